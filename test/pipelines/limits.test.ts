// Issue 9, case 7: sizes a request implies are checked before allocation, with a typed error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { checkGenerationMemory, estimateGenerationBytes, MAX_SIDE } from '../../src/pipelines/limits.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from './fixtures.js';

const tmp = tempCache('limits');

const tooLarge = (e: unknown) => e instanceof ConfigError && e.code === 'TOO_LARGE';

// the timeout is a liveness bound (allocating the latents would take far longer), not a speed claim
test('--width 65536 --height 65536 is refused at once, before loading', { timeout: 60_000 }, async () => {
  const rss0 = process.memoryUsage().rss;
  const r = await runCli(['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'x', '--width', '65536', '--height', '65536', '--out', join(tmp.dir, 'big.png')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`width: 65536 pixels is above the limit of ${MAX_SIDE}.*\\[TOO_LARGE\\]`));
  assert.ok(process.memoryUsage().rss - rss0 < 256 * 2 ** 20);
});

test('many large images: refused against the machine memory', async () => {
  const r = await runCli(['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'x', '--width', '8192', '--height', '8192',
    '--num-images', '512', '--out', join(tmp.dir, 'many')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /512 images of 8192×8192 need about [\d.]+ GiB of memory .*\[TOO_LARGE\]/);
  assert.throws(() => checkGenerationMemory(1, 1024, 1024, { block_out_channels: [128] }, 2 ** 20), tooLarge);
  checkGenerationMemory(1, 1024, 1024, { block_out_channels: [128] }, 64 * 2 ** 30);
  assert.ok(estimateGenerationBytes(2, 64, 64, { block_out_channels: [32] }) === 2 * estimateGenerationBytes(1, 64, 64, { block_out_channels: [32] }));
});

test('a UNet config with sample_size 100000: typed errors from the CLI and the library', async () => {
  const model = join(tmp.dir, 'huge-sample');
  cpSync(fixture('pipelines', 'sd15-tiny'), model, { recursive: true });
  const cfgFile = join(model, 'unet', 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), sample_size: 100000 }));
  const r = await runCli(['generate', '--model', model, '--prompt', 'x', '--out', join(tmp.dir, 'huge.png')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /above the limit .*sample_size 100000.*\[TOO_LARGE\]/);
  const pipe = await loadPipeline(model, { threads: 1 });
  try {
    await assert.rejects(pipe.generate({ prompt: 'x', steps: 1 }), tooLarge);
  } finally {
    await pipe.release();
  }
});
