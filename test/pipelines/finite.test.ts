// Issue 9, case 4: NaN and infinity end in an error naming the stage, never in a saved black image.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '../../src/core/tensor.js';
import { ConfigError, RuntimeFailure } from '../../src/errors.js';
import { checkFinite, checkFiniteInput, firstNonFinite } from '../../src/pipelines/finite.js';
import { writeTensorsFile } from '../../src/pipelines/embeddings-io.js';
import { runCli } from '../cli/run-cli.js';
import { editedCopy, fixture } from '../helpers.js';
import { tempCache } from './fixtures.js';

const tmp = tempCache('finite');

const base = (model: string, out: string, ...more: string[]) =>
  ['generate', '--model', model, '--prompt', 'a photo of a cat', '--steps', '2', '--width', '32', '--height', '32', '--seed', '3', '--threads', '1', '--out', out, ...more];

test('firstNonFinite / checkFinite', () => {
  assert.equal(firstNonFinite(Float32Array.of(0, 1e38, -3)), -1);
  assert.equal(firstNonFinite(Float32Array.of(0, NaN)), 1);
  assert.equal(firstNonFinite([Infinity]), 0);
  assert.equal(firstNonFinite([-Infinity]), 0);
  assert.throws(() => checkFinite('the vae_decoder', Float32Array.of(1, NaN, Infinity)), (e: unknown) =>
    e instanceof RuntimeFailure && e.code === 'NON_FINITE' && /the vae_decoder produced 1 NaN and 1 infinite of 3 values \(first at index 1\)/.test(e.message));
  assert.throws(() => checkFiniteInput('latents', [NaN]), (e: unknown) => e instanceof ConfigError && e.key === 'latents');
});

test('--guidance 1e308: an error naming the denoising step, exit 1, nothing saved', async () => {
  const out = join(tmp.dir, 'huge-guidance.png');
  const r = await runCli(base(fixture('pipelines', 'sd15-tiny'), out, '--guidance', '1e308'));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /denoising step 1 of \d+ .*produced .*(NaN|infinite).*\[NON_FINITE\]/);
  assert.equal(existsSync(out), false);
});

test('latents full of NaN: refused as input, naming the option', async () => {
  const lat = join(tmp.dir, 'nan-latents.safetensors');
  writeTensorsFile(lat, { latents: { dims: [1, 4, 16, 16], data: new Float32Array(1024).fill(NaN) } });
  const out = join(tmp.dir, 'nan.png');
  const r = await runCli(base(fixture('pipelines', 'sd15-tiny'), out, '--latents', lat));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /latents: holds 1024 NaN of 1024 values.*\[NON_FINITE\]/);
  assert.equal(existsSync(out), false);
});

test('a VAE that overflows: the error names the vae_decoder', async () => {
  const model = join(tmp.dir, 'broken-vae');
  cpSync(fixture('pipelines', 'sd15-tiny'), model, { recursive: true });
  const vae = editedCopy(join(model, 'vae'), { tensors: (m) => {
    const b = m.get('decoder.conv_out.bias')!;
    m.set('decoder.conv_out.bias', tensor.f32(b.shape, new Float32Array(b.shape[0]!).fill(Infinity)));
  } });
  rmSync(join(model, 'vae'), { recursive: true });
  cpSync(vae, join(model, 'vae'), { recursive: true });
  const out = join(tmp.dir, 'vae.png');
  const r = await runCli(base(model, out));
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /the vae_decoder produced .*infinite.*\[NON_FINITE\]/);
  assert.equal(existsSync(out), false);
});
