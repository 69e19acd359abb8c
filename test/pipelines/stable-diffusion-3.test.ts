import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { f32, i64, type HostTensor } from '../../src/runtime/session.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { StableDiffusion3Pipeline } from '../../src/pipelines/stable-diffusion-3.js';
import { getPreset } from '../../src/random/presets.js';
import { toInt64 } from '../../src/tokenizers/index.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { randomPipelineWith, SpyDenoiser, tempDir, tinyClip } from './fixtures.js';

const tmp = tempDir('sd3');
let pipe: StableDiffusion3Pipeline;
let noT5: StableDiffusion3Pipeline;

const tinyT5 = { ...(getPreset('t5-xxl-sd3').config as Record<string, unknown>), d_model: 32, d_ff: 64, d_kv: 16, num_heads: 2, num_layers: 1 };

before(async () => {
  // sd3-transformer-tiny: joint_attention_dim 32 (T5 d_model; CLIP 16 + 16 padded), pooled_projection_dim 32 = 16 + 16
  const encoders = { text_encoder: tinyClip(16, 16), text_encoder_2: tinyClip(16, 16), text_encoder_3: tinyT5 };
  const dir = randomPipelineWith(join(tmp.dir, 'sd3'), 'sd3', ['transformer', fixture('models', 'sd3-transformer-tiny')], fixture('models', 'flux-vae-tiny'), encoders);
  const p = await loadPipeline(dir, { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
  assert.ok(p instanceof StableDiffusion3Pipeline);
  pipe = p;
  const dir2 = randomPipelineWith(join(tmp.dir, 'sd3-no-t5'), 'sd3', ['transformer', fixture('models', 'sd3-transformer-tiny')], fixture('models', 'flux-vae-tiny'), encoders);
  const { rmSync, readFileSync, writeFileSync } = await import('node:fs');
  for (const f of ['text_encoder_3', 'tokenizer_3']) rmSync(join(dir2, f), { recursive: true });
  const index = JSON.parse(readFileSync(join(dir2, 'model_index.json'), 'utf8'));
  index.text_encoder_3 = [null, null];
  index.tokenizer_3 = [null, null];
  writeFileSync(join(dir2, 'model_index.json'), JSON.stringify(index));
  const q = await loadPipeline(dir2, { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
  assert.ok(q instanceof StableDiffusion3Pipeline);
  noT5 = q;
});

after(async () => {
  await pipe?.release();
  await noT5?.release();
  tmp.cleanup();
});

describe('StableDiffusion3Pipeline', () => {
  test('its denoiser, fed the sd3-transformer-tiny reference inputs, matches the reference', async () => {
    const ref = fixture('models', 'sd3-transformer-tiny', 'reference.safetensors');
    const input = (k: string) => { const t = readF32(ref, `input.${k}`); return f32(t.shape, t.data); };
    for (const t of [999, 500, 10]) {
      const feeds = pipe.denoiser.prepare({
        hidden_states: input('hidden_states'), encoder_hidden_states: input('encoder_hidden_states'), pooled_projections: input('pooled_projections'),
        timestep: f32([2], new Float32Array([t, t])),
      });
      const signature = { batch: 2, width: 16, height: 16, steps: 1, cfg: null };
      const out = await pipe.denoiser.predict(feeds, { stepIndex: 0, numSteps: 1, timestep: t, sigma: undefined, branch: 'cond', signature });
      const err = relL2(out.sample.data as Float32Array, readF32(ref, `output.sample.t${t}`).data);
      assert.ok(err < 1e-4, `t=${t}: relative L2 ${err}`);
    }
  });

  test('runs end to end: CLIP-L | CLIP-G padded to T5 width, T5 appended, pooled concatenated, shifted FlowMatch, CFG', async () => {
    const spy = new SpyDenoiser(pipe.denoiser);
    pipe.denoiser = spy;
    try {
      const r = await pipe.generate({ prompt: 'a photo of a cat', steps: 4, width: 16, height: 16, seed: 3, maxSequenceLength: 8 });
      assert.deepEqual(r.images.dims, [1, 3, 16, 16]);
      assert.ok(r.images.data.every((v) => v >= 0 && v <= 1));
      // shift 3 (k(s) = 3s / (1 + 2s)), applied to linspace(1, k(1/1000), 4) as diffusers does
      const k = (s: number) => (3 * s) / (1 + 2 * s);
      const want = [0, 1, 2, 3].map((i) => 1000 * k(1 + (i / 3) * (k(0.001) - 1)));
      r.settings.timesteps.forEach((t, i) => assert.ok(Math.abs(t - want[i]!) < 1e-3, `timestep ${i}: ${t} vs ${want[i]}`));
      assert.deepEqual(spy.timesteps, r.settings.timesteps.map(Math.fround));
      const feeds = spy.prepared[0]!;
      assert.deepEqual(feeds.encoder_hidden_states!.dims, [2, 77 + 8, 32]);
      const ctx = (feeds.encoder_hidden_states!.data as Float32Array).subarray(85 * 32); // the cond row
      const ids = (te: NonNullable<typeof pipe.textEncoder>, text: string, n: number) => i64([1, n], toInt64(te.tokenizer.encode(text, { maxLength: n, padding: true, truncation: true }).ids));
      const run = async (te: NonNullable<typeof pipe.textEncoder>, n: number, outs: string[]) => (await te.session.run({ input_ids: ids(te, 'a photo of a cat', n) }, outs)).outputs;
      const l = await run(pipe.textEncoder!, 77, ['hidden_states.1', 'text_embeds']);
      const g = await run(pipe.textEncoder2!, 77, ['hidden_states.1', 'text_embeds']);
      const t5 = (await run(pipe.textEncoder3!, 8, ['last_hidden_state'])).last_hidden_state!.data as Float32Array;
      const at = (x: HostTensor, i: number, n: number) => Array.from((x.data as Float32Array).subarray(i * n, (i + 1) * n));
      for (const s of [0, 9, 76]) {
        assert.deepEqual(Array.from(ctx.subarray(s * 32, s * 32 + 16)), at(l['hidden_states.1']!, s, 16));
        assert.deepEqual(Array.from(ctx.subarray(s * 32 + 16, s * 32 + 32)), at(g['hidden_states.1']!, s, 16));
      }
      assert.deepEqual(Array.from(ctx.subarray(77 * 32)), Array.from(t5));
      const pooled = (feeds.pooled_projections!.data as Float32Array).subarray(32);
      assert.deepEqual(Array.from(pooled), [...at(l.text_embeds!, 0, 16), ...at(g.text_embeds!, 0, 16)]);
      // the negative prompt "" is encoded, not zeroed
      assert.ok((feeds.pooled_projections!.data as Float32Array).subarray(0, 32).some((v) => v !== 0));
    } finally {
      pipe.denoiser = spy.inner;
    }
  });

  test('without T5 the sequence tail is zeros; batched and split CFG agree', async () => {
    const spy = new SpyDenoiser(noT5.denoiser);
    noT5.denoiser = spy;
    let a;
    try {
      a = await noT5.generate({ prompt: 'a fox', steps: 2, width: 16, height: 16, seed: 1, maxSequenceLength: 4 });
    } finally {
      noT5.denoiser = spy.inner;
    }
    const ctx = spy.prepared[0]!.encoder_hidden_states!;
    assert.deepEqual(ctx.dims, [2, 81, 32]);
    assert.ok((ctx.data as Float32Array).subarray(81 * 32 + 77 * 32).every((v) => v === 0));
    const b = await noT5.generate({ prompt: 'a fox', steps: 2, width: 16, height: 16, seed: 1, maxSequenceLength: 4, cfgMode: 'split' });
    assert.ok(relL2(a.latents.data, b.latents.data) < 1e-5);
    await assert.rejects(noT5.generate({ prompt: 'a fox', width: 18, height: 16 }), (e: unknown) => e instanceof ConfigError && e.key === 'width');
    await assert.rejects(noT5.generate({ prompt: 'a fox', maxSequenceLength: 513 }), (e: unknown) => e instanceof ConfigError && e.key === 'maxSequenceLength');
  });
});

test('SD3 image-to-image: scale_noise at the start step, the start index from the strength', async () => {
  const image = (await noT5.generate({ prompt: 'a fox', steps: 2, width: 16, height: 16, seed: 1, maxSequenceLength: 4 })).images;
  const r = await noT5.generate({ prompt: 'a fox', steps: 10, seed: 2, maxSequenceLength: 4, image, strength: 0.35 });
  assert.equal(r.settings.startIndex, 6); // not floored, as StableDiffusion3Img2ImgPipeline: int(10 − 3.5) = 6
  assert.deepEqual(r.images.dims, [1, 3, 16, 16]);
  const small = await noT5.generate({ prompt: 'a fox', steps: 10, seed: 2, maxSequenceLength: 4, image, strength: 0.05 });
  assert.equal(small.settings.startIndex, 9); // int(9.5): one step, where SD's rule would leave none
  await assert.rejects(noT5.generate({ prompt: 'a fox', steps: 10, image, strength: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'strength');
});
