// Runs every *.test.ts under test/ with node's test runner (TypeScript through tsx), streams its
// TAP output, and closes with what a reader needs: each skipped test with its reason, each
// failure, the slowest files, and one line of counts. Node 20's --test does not expand globs
// itself, so we list the files here. node's own closing lines (`# pass N` ...) stay in the output
// (CI reads them).
//
// Two files run at a time (CI has two cores), so each onnxruntime session gets one intra-op
// thread that never spins (SMASH_ORT_THREADS, read by src/runtime/session.ts): onnxruntime's
// default, a thread per physical core it finds, would have the two files' pools fight for the
// cores on a machine where it finds more than one (on the 2-core VM of 2026-12-01 it made no pool,
// so there the setting changed nothing measurable). A SMASH_ORT_THREADS already set wins; set it
// empty to run with onnxruntime's defaults.
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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

const started = performance.now();
const timesDir = mkdtempSync(join(tmpdir(), 'smash-test-times-'));
const timesFile = join(timesDir, 'files.jsonl');
const reporters = ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${fileURLToPath(new URL('file-times.mjs', import.meta.url))}`, `--test-reporter-destination=${timesFile}`];
const env = { ...process.env, SMASH_ORT_THREADS: process.env.SMASH_ORT_THREADS ?? '1' };
const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...reporters, '--test-concurrency=2', ...files], { stdio: ['inherit', 'pipe', 'inherit'], env });
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
  const slowest = fileTimes().sort((a, b) => b.ms - a.ms).slice(0, 10);
  if (slowest.length > 1) {
    out.push('slowest files (wall time of each file\'s process; two run at a time):');
    for (const f of slowest) out.push(`  ${(f.ms / 1000).toFixed(1).padStart(6)} s  ${relative(process.cwd(), f.file)}`);
  }
  out.push(`wall time ${((performance.now() - started) / 1000).toFixed(1)} s, SMASH_ORT_THREADS=${env.SMASH_ORT_THREADS || '(unset)'}`);
  const pass = counts.pass ?? 0;
  const fail = (counts.fail ?? 0) + (counts.cancelled ?? 0);
  out.push(`${pass} passed, ${fail} failed, ${counts.skipped ?? skipped.length} skipped`);
  console.log(out.join('\n'));
  const bad = code !== 0 || signal !== null || fail > 0 || counts.pass === undefined;
  process.exit(bad ? (code || 1) : 0);
});

/** The files' wall times that scripts/file-times.mjs wrote (none if the run died before it could). */
function fileTimes() {
  try {
    return readFileSync(timesFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  } finally {
    rmSync(timesDir, { recursive: true, force: true });
  }
}
