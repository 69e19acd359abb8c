// Issue 9, cases 5 and 12: long prompts come from files; an empty prompt is legitimate; the
// report tells load time and cache use, steps as asked, and null guidance where it is ignored.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('gen-options');

const sd = fixture('pipelines', 'sd15-tiny');
const args = (out: string, ...more: string[]) =>
  ['generate', '--model', sd, '--steps', '1', '--width', '32', '--height', '32', '--seed', '1', '--threads', '1', '--out', join(tmp.dir, out), ...more];

test('5: a 30 KB --prompt is refused before loading, pointing to --prompt-file, which takes it', async () => {
  const long = 'a red fox in the snow, '.repeat(1400);
  assert.ok(long.length > 30_000);
  const r = await runCli(args('long.png', '--prompt', long));
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--prompt is \d+ characters .*--prompt-file <file> \[PROMPT_TOO_LONG\]/);
  assert.equal(existsSync(join(tmp.dir, 'cache')), false, 'refused before any conversion');

  const file = join(tmp.dir, 'prompt.txt');
  writeFileSync(file, `${long}\n`);
  const neg = join(tmp.dir, 'negative.txt');
  writeFileSync(neg, 'blurry');
  const ok = await runCli(args('long.png', '--prompt-file', file, '--negative-prompt-file', neg, '--report', join(tmp.dir, 'long.json')));
  assert.equal(ok.code, 0, ok.stderr);
  const rep = JSON.parse(readFileSync(join(tmp.dir, 'long.json'), 'utf8'));
  assert.equal(rep.settings.prompt[0], long);
  assert.deepEqual(rep.settings.negativePrompt, ['blurry']);
  // the truncation warning stays one short line
  const warn = ok.stderr.split('\n').find((l) => l.includes('truncated'))!;
  assert.ok(warn.length < 400, warn);

  const missing = await runCli(args('x.png', '--prompt-file', join(tmp.dir, 'nope.txt')));
  assert.match(missing.stderr, /cannot read --prompt-file: ENOENT.*nope\.txt \[FILE_MISSING\]/);
});

test('12: --prompt "" generates (unconditional); the report has loadMs and cache hit/miss', async () => {
  const report = join(tmp.dir, 'empty.json');
  const r = await runCli(args('empty.png', '--prompt', '', '--report', report));
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  assert.deepEqual(rep.settings.prompt, ['']);
  assert.equal(typeof rep.timings.loadMs, 'number');
  assert.ok(rep.timings.loadMs > 0);
  assert.equal(typeof rep.conversionCache.hit, 'boolean');
  const again = join(tmp.dir, 'again.json');
  assert.equal((await runCli(args('again.png', '--prompt', '', '--report', again))).code, 0);
  assert.equal(JSON.parse(readFileSync(again, 'utf8')).conversionCache.hit, true);
  assert.match(r.stdout, /load [\d.]+ s \((converted|cached)\)/);
});

test('12: PNDM --steps 3 reports 3 steps (and its 4 denoiser calls)', async () => {
  const report = join(tmp.dir, 'pndm.json');
  const r = await runCli(args('pndm.png', '--prompt', 'a cat', '--report', report, '--steps', '3'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 steps \(4 denoiser calls\)/);
  assert.equal(JSON.parse(readFileSync(report, 'utf8')).settings.steps, 3);
});

test('12: a Flux transformer without guidance input reports guidanceScale null', async () => {
  const report = join(tmp.dir, 'schnell.json');
  const r = await runCli(['generate', '--model', fixture('trained', 'shapes-flux'), '--prompt', 'a large red circle at the center on a blue background',
    '--steps', '1', '--width', '32', '--height', '32', '--seed', '1', '--threads', '1', '--out', join(tmp.dir, 'schnell.png'), '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(readFileSync(report, 'utf8')).settings.guidanceScale, null);
});

test('12: create-random counts what inspect counts (SD3 stores a pos_embed buffer)', async () => {
  const out = join(tmp.dir, 'sd3');
  const r = await runCli(['create-random', '--config', 'sd3-medium', '--width-mult', '0.05', '--depth', '1', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const i = JSON.parse((await runCli(['inspect', out, '--json'])).stdout);
  const stored = Number(/([\d,]+) values stored/.exec(r.stdout)![1]!.replaceAll(',', ''));
  assert.equal(stored, i.parameters.count);
  assert.match(r.stdout, /trainable parameters \+ buffers/);
});
