// Runs every *.test.ts under test/ with node's test runner (TypeScript through tsx), streams its
// TAP output, and closes with what a reader needs: each skipped test with its reason, each
// failure, and one line of counts. Node 20's --test does not expand globs itself, so we list
// the files here. node's own closing lines (`# pass N` ...) stay in the output (CI reads them).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}
const filter = process.argv.slice(2);
let files = find('test').sort();
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error(`no test file matches ${filter.join(', ')}`);
  process.exit(1);
}

// `ok 3 - name # SKIP reason` / `not ok 4 - name`, at any depth (subtests are indented)
const RESULT = /^(\s*)(not ok|ok) \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*))?$/;
const COUNT = /^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/;
const skipped = [];
const failed = [];
const counts = {};
let pending = '';
let lastFailure = -1;

function onLine(line) {
  const m = RESULT.exec(line);
  if (m) {
    const [, , status, name, directive, reason] = m;
    lastFailure = -1;
    if (directive === 'SKIP') skipped.push(`${name}: ${reason || 'no reason given'}`);
    else if (status === 'not ok') lastFailure = failed.push(name) - 1;
  }
  // the YAML block after a failure says where the test is
  const loc = /^\s*location: '(.*?)(?::\d+:\d+)?'$/.exec(line);
  if (loc && lastFailure >= 0) {
    failed[lastFailure] += ` (${loc[1].replace(process.cwd() + '/', '')})`;
    lastFailure = -1;
  }
  const c = COUNT.exec(line);
  if (c) counts[c[1]] = Number(c[2]);
}

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-concurrency=2', ...files], { stdio: ['inherit', 'pipe', 'inherit'] });
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = pending + chunk.toString('utf8');
  const lines = text.split('\n');
  pending = lines.pop();
  for (const l of lines) onLine(l);
});
child.on('close', (code, signal) => {
  if (pending) onLine(pending);
  const out = [''];
  out.push(`skipped tests: ${skipped.length}`);
  for (const s of skipped) out.push(`  - ${s}`);
  if (failed.length) {
    out.push(`failed tests: ${failed.length}`);
    for (const f of failed) out.push(`  - ${f}`);
  }
  const pass = counts.pass ?? 0;
  const fail = (counts.fail ?? 0) + (counts.cancelled ?? 0);
  out.push(`${pass} passed, ${fail} failed, ${counts.skipped ?? skipped.length} skipped`);
  console.log(out.join('\n'));
  const bad = code !== 0 || signal !== null || fail > 0 || counts.pass === undefined;
  process.exit(bad ? (code || 1) : 0);
});
