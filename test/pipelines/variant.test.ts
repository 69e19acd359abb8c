// Issue 9, case 10: fp16-only folders load; --variant chooses; the only variant is picked and said.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyFileSync, cpSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { onlyVariant, variantsOf } from '../../src/pipelines/variant.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from './fixtures.js';

const tmp = tempCache('variant');

/** sd15-tiny with every model component's weights renamed to `<stem>.<variant>.safetensors` (plus `extra` copies). */
function variantFolder(name: string, variant: string, extra?: string): string {
  const dir = join(tmp.dir, name);
  cpSync(fixture('pipelines', 'sd15-tiny'), dir, { recursive: true });
  for (const c of ['unet', 'vae', 'text_encoder']) {
    for (const f of readdirSync(join(dir, c)).filter((f) => f.endsWith('.safetensors'))) {
      const stem = f.replace(/\.safetensors$/, '');
      if (extra) copyFileSync(join(dir, c, f), join(dir, c, `${stem}.${extra}.safetensors`));
      renameSync(join(dir, c, f), join(dir, c, `${stem}.${variant}.safetensors`));
    }
  }
  return dir;
}

const gen = (model: string, out: string, ...more: string[]) => runCli(['generate', '--model', model, '--prompt', 'a cat', '--steps', '1',
  '--width', '32', '--height', '32', '--seed', '1', '--threads', '1', '--out', join(tmp.dir, out), ...more]);

test('variantsOf / onlyVariant', () => {
  const dir = variantFolder('unit', 'fp16');
  assert.deepEqual([...variantsOf(join(dir, 'unet')).variants], ['fp16']);
  assert.equal(variantsOf(join(dir, 'unet')).plain, false);
  assert.equal(onlyVariant(['unet', 'vae', 'text_encoder'].map((c) => join(dir, c))), 'fp16');
  assert.equal(onlyVariant([fixture('pipelines', 'sd15-tiny', 'unet')]), undefined);
});

test('an fp16-only folder generates: the variant is picked and said; --variant takes it quietly', async () => {
  const dir = variantFolder('fp16-only', 'fp16');
  const r = await gen(dir, 'auto.png');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /using the 'fp16' weights/);
  const q = await gen(dir, 'given.png', '--variant', 'fp16');
  assert.equal(q.code, 0, q.stderr);
  assert.doesNotMatch(q.stderr, /using the/);
});

test('two variants and no plain weights: an error asking for --variant, which then works', async () => {
  const dir = variantFolder('two', 'fp16', 'bf16');
  const r = await gen(dir, 'two.png');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /pass a variant\?.*\[WEIGHTS_MISSING\]/);
  assert.equal((await gen(dir, 'two.png', '--variant', 'bf16')).code, 0);
});
