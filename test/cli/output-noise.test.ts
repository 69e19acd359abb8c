// Issue 9, case 13: no npm config warning, no progress bars or blank lines in redirected logs,
// each warning once and cut to a readable line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progressBars } from '../../src/cli/progress.js';
import { MAX_WARNING, warner } from '../../src/cli/warnings.js';
import { runCli } from './run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tmp = tempCache('noise');

test('the CUDA download is skipped through allowScripts, not an npm config key npm warns about', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], false);
  const npmrc = join(ROOT, '.npmrc');
  if (existsSync(npmrc)) assert.doesNotMatch(readFileSync(npmrc, 'utf8'), /onnxruntime-node-install/);
});

test('progress bars write nothing when stderr is not a terminal', () => {
  const written: string[] = [];
  const stream = { isTTY: false, write: (s: string) => (written.push(s), true) } as unknown as NodeJS.WriteStream;
  const bars = progressBars(stream);
  bars.update('denoise', 1, 2, 'steps');
  bars.stop();
  assert.deepEqual(written, []);
});

test('a warning prints once, on one line, cut', () => {
  const out: string[] = [];
  const warn = warner((s) => out.push(s));
  warn('same');
  warn('same');
  warn(`long\n${'x'.repeat(9786)}`);
  assert.equal(out.length, 2);
  assert.ok(out[1]!.length < MAX_WARNING + 60, `${out[1]!.length}`);
  assert.equal(out[1]!.split('\n').length, 2);
  assert.match(out[1]!, /… \(9791 characters\)\n$/);
});

test('generate --provider cuda without CUDA: the fallback warning once, no blank lines', async () => {
  const r = await runCli(['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'a cat', '--steps', '1', '--width', '32', '--height', '32',
    '--seed', '1', '--threads', '1', '--provider', 'cuda', '--out', join(tmp.dir, 'cuda.png')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.split('\n').filter((l) => /execution provider 'cuda' is unavailable/.test(l)).length, 1, r.stderr);
  for (const s of [r.stdout, r.stderr]) assert.ok(!s.split('\n').slice(0, -1).some((l) => l.trim() === ''), JSON.stringify(s));
});
