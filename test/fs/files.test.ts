// Issue 9, cases 8 and 9: links to devices and loops, walks out of the folder, raw errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import { checkRegularFile, walkFiles } from '../../src/fs/files.js';
import { cacheKey } from '../../src/pipelines/cache.js';
import { Session } from '../../src/runtime/session.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('files');

// reading /dev/zero never ends: the timeout is a liveness bound, not a speed claim
test('8: a model.onnx linked to /dev/zero is refused without reading it', { timeout: 60_000 }, async () => {
  const dir = join(tmp.dir, 'zero');
  mkdirSync(dir);
  symlinkSync('/dev/zero', join(dir, 'model.onnx'));
  for (const p of [join(dir, 'model.onnx'), dir]) {
    const r = await runCli(['inspect', p]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ONNX model is not a regular file \(a device\).*\[NOT_A_FILE\]/);
  }
  await assert.rejects(Session.create(join(dir, 'model.onnx')), (e: unknown) => e instanceof ModelFormatError && e.code === 'NOT_A_FILE');
  assert.throws(() => checkRegularFile(dir, 'x'), (e: unknown) => e instanceof ModelFormatError && /a folder/.test(e.message));
});

test('8: a symlink loop in a model folder is a typed error', async () => {
  const dir = join(tmp.dir, 'loop');
  cpSync(fixture('models', 'clip-text-tiny'), dir, { recursive: true });
  symlinkSync('b', join(dir, 'a'));
  symlinkSync('a', join(dir, 'b'));
  assert.throws(() => walkFiles(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'SYMLINK_LOOP');
  const r = await runCli(['inspect', join(dir, 'a')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /symbolic links form a loop.*\[SYMLINK_LOOP\]/);
});

// a walk that followed `/` or a cycle would not end in time: the timeout is a liveness bound
test('8: the cache-key walk follows file links but never a folder link out of the folder', { timeout: 30_000 }, () => {
  const dir = join(tmp.dir, 'walk');
  mkdirSync(join(dir, 'unet'), { recursive: true });
  writeFileSync(join(dir, 'model_index.json'), '{}');
  const blobs = join(tmp.dir, 'blobs');
  mkdirSync(blobs);
  writeFileSync(join(blobs, 'abc'), 'weights');
  symlinkSync(join(blobs, 'abc'), join(dir, 'unet', 'w.safetensors')); // as Hugging Face snapshots do
  symlinkSync('/', join(dir, 'root')); // out of the folder: not walked
  symlinkSync('..', join(dir, 'unet', 'up')); // a cycle back into the folder: walked once
  mkdirSync(join(dir, 'inner'));
  writeFileSync(join(dir, 'inner', 'x.json'), '1');
  symlinkSync('inner', join(dir, 'alias')); // inside, already seen or not: walked at most once
  const files = walkFiles(dir).map((f) => f.path);
  assert.ok(files.includes('unet/w.safetensors'));
  assert.ok(files.includes('model_index.json'));
  assert.ok(!files.some((f) => f.startsWith('root/')), files.join(' '));
  assert.ok(!files.some((f) => f.startsWith('unet/up/')), files.join(' '));
  assert.equal(files.filter((f) => f.endsWith('/x.json')).length, 1, files.join(' '));
  assert.match(cacheKey(dir), /^[0-9a-f]{32}$/);
});

test('9: raw file-system errors become one line with a code', async () => {
  const file = join(tmp.dir, 'a-file');
  writeFileSync(file, 'x');
  const src = fixture('models', 'clip-text-tiny');
  const r1 = await runCli(['convert', src, '--out', file]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /^smash: .*exists and is not a folder \[OUT_NOT_FOLDER\]\n$/);
  const r2 = await runCli(['convert', src, '--out', join(file, 'sub', 'out')]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /^smash: .*a part of the path is a file, not a folder.*a-file.* \[NOT_A_FOLDER\]\n$/);
  await assert.rejects(Session.create(join(tmp.dir, 'missing.onnx')), (e: unknown) => e instanceof ModelFormatError && e.code === 'FILE_MISSING');

  // a bad vocab.json: the error names the user's file, not the cache's copy
  const model = join(tmp.dir, 'bad-vocab');
  cpSync(fixture('pipelines', 'sd15-tiny'), model, { recursive: true });
  writeFileSync(join(model, 'tokenizer', 'vocab.json'), '{"a": "not an id"}');
  const g = await runCli(['generate', '--model', model, '--prompt', 'x', '--steps', '1', '--width', '32', '--height', '32', '--out', join(tmp.dir, 'v.png')]);
  assert.equal(g.code, 1);
  assert.ok(g.stderr.includes(join(model, 'tokenizer', 'vocab.json')), g.stderr);
  assert.ok(!g.stderr.includes(join(tmp.dir, 'cache')), g.stderr);
});
