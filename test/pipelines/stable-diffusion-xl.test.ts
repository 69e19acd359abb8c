import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { f32, i64 } from '../../src/runtime/session.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { StableDiffusionXLPipeline } from '../../src/pipelines/stable-diffusion-xl.js';
import { toInt64 } from '../../src/tokenizers/index.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { randomPipelineWith, SpyDenoiser, tempDir, tinyClip } from './fixtures.js';

const tmp = tempDir('sdxl');
let pipe: StableDiffusionXLPipeline;

before(async () => {
  // sdxl-unet-tiny: cross_attention_dim 64 = 32 + 32; text_embeds 80 − 6 × 8 = 32
  const dir = randomPipelineWith(join(tmp.dir, 'sdxl'), 'sdxl', ['unet', fixture('models', 'sdxl-unet-tiny')], fixture('models', 'sd-vae-tiny'), {
    text_encoder: tinyClip(32),
    text_encoder_2: tinyClip(32, 32),
  });
  const p = await loadPipeline(dir, { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
  assert.ok(p instanceof StableDiffusionXLPipeline);
  pipe = p;
});

after(async () => {
  await pipe?.release();
  tmp.cleanup();
});

describe('StableDiffusionXLPipeline', () => {
  test('its denoiser, fed the sdxl-unet-tiny reference inputs, matches the reference', async () => {
    const ref = fixture('models', 'sdxl-unet-tiny', 'reference.safetensors');
    const input = (k: string) => { const t = readF32(ref, `input.${k}`); return f32(t.shape, t.data); };
    for (const t of [999, 501, 1]) {
      const feeds = pipe.denoiser.prepare({
        sample: input('sample'), encoder_hidden_states: input('encoder_hidden_states'), text_embeds: input('text_embeds'), time_ids: input('time_ids'),
        timestep: f32([2], new Float32Array([t, t])),
      });
      const signature = { batch: 2, width: 32, height: 32, steps: 1, cfg: null };
      const out = await pipe.denoiser.predict(feeds, { stepIndex: 0, numSteps: 1, timestep: t, sigma: undefined, branch: 'cond', signature });
      const err = relL2(out.sample.data as Float32Array, readF32(ref, `output.sample.t${t}`).data);
      assert.ok(err < 1e-4, `t=${t}: relative L2 ${err}`);
    }
  });

  test('runs end to end: penultimate hidden states concatenated, pooled text_embeds, time_ids, zero negatives', async () => {
    const spy = new SpyDenoiser(pipe.denoiser);
    pipe.denoiser = spy;
    try {
      const r = await pipe.generate({ prompt: 'a photo of a cat', steps: 3, width: 32, height: 32, seed: 3 });
      assert.deepEqual(r.images.dims, [1, 3, 32, 32]);
      assert.ok(r.images.data.every((v) => v >= 0 && v <= 1));
      assert.equal(r.settings.pipeline, 'StableDiffusionXLPipeline');
      const feeds = spy.prepared[0]!;
      assert.deepEqual(Array.from(feeds.time_ids!.data as Float32Array), [32, 32, 0, 0, 32, 32, 32, 32, 0, 0, 32, 32]);
      // the reference encoding: each tokenizer's 77 ids, hidden_states[-2] of both encoders concatenated, text_embeds of the second
      const te1 = pipe.textEncoder!;
      const te2 = pipe.textEncoder2!;
      const ids = (te: typeof te1) => i64([1, 77], toInt64(te.tokenizer.encode('a photo of a cat', { maxLength: 77, padding: true, truncation: true }).ids));
      const h1 = (await te1.session.run({ input_ids: ids(te1) }, ['hidden_states.1'])).outputs['hidden_states.1']!.data as Float32Array;
      const o2 = (await te2.session.run({ input_ids: ids(te2) }, ['hidden_states.1', 'text_embeds'])).outputs;
      const h2 = o2['hidden_states.1']!.data as Float32Array;
      const ctx = feeds.encoder_hidden_states!.data as Float32Array;
      assert.deepEqual(feeds.encoder_hidden_states!.dims, [2, 77, 64]);
      // uncond first, all zeros (force_zeros_for_empty_prompt); cond = [h1 | h2] per token
      assert.ok(ctx.subarray(0, 77 * 64).every((v) => v === 0));
      for (const s of [0, 5, 76]) {
        assert.deepEqual(Array.from(ctx.subarray(77 * 64 + s * 64, 77 * 64 + s * 64 + 32)), Array.from(h1.subarray(s * 32, s * 32 + 32)));
        assert.deepEqual(Array.from(ctx.subarray(77 * 64 + s * 64 + 32, 77 * 64 + s * 64 + 64)), Array.from(h2.subarray(s * 32, s * 32 + 32)));
      }
      const pooled = feeds.text_embeds!.data as Float32Array;
      assert.ok(pooled.subarray(0, 32).every((v) => v === 0));
      assert.deepEqual(Array.from(pooled.subarray(32)), Array.from(o2.text_embeds!.data as Float32Array));
    } finally {
      pipe.denoiser = spy.inner;
    }
  });

  test('given embeddings reproduce the prompt; a negative prompt is encoded, not zeroed', async () => {
    const opts = { steps: 2, width: 32, height: 32, seed: 5 };
    const a = await pipe.generate({ ...opts, prompt: 'a red fox' });
    const spy = new SpyDenoiser(pipe.denoiser);
    pipe.denoiser = spy;
    try {
      await pipe.generate({ ...opts, prompt: 'a red fox', negativePrompt: 'blurry', cfgMode: 'split' });
    } finally {
      pipe.denoiser = spy.inner;
    }
    const [uncond, cond] = spy.prepared;
    assert.ok((uncond!.text_embeds!.data as Float32Array).some((v) => v !== 0), 'the negative prompt is encoded');
    const b = await pipe.generate({
      ...opts,
      promptEmbeds: { dims: [1, 77, 64], data: cond!.encoder_hidden_states!.data as Float32Array },
      pooledPromptEmbeds: { dims: [1, 32], data: cond!.text_embeds!.data as Float32Array },
    });
    assert.ok(relL2(b.latents.data, a.latents.data) < 1e-6);
    await assert.rejects(pipe.generate({ ...opts, promptEmbeds: { dims: [1, 77, 64], data: new Float32Array(77 * 64) } }), (e: unknown) => e instanceof ConfigError && e.key === 'pooledPromptEmbeds');
    await assert.rejects(pipe.generate({ ...opts, promptEmbeds: { dims: [1, 77, 64], data: new Float32Array(77 * 64) }, pooledPromptEmbeds: { dims: [1, 31], data: new Float32Array(31) } }), (e: unknown) => e instanceof ConfigError && e.key === 'pooledPromptEmbeds');
  });
});

test('SDXL image-to-image: default strength 0.3 (diffusers\' StableDiffusionXLImg2ImgPipeline)', async () => {
  const image = (await pipe.generate({ prompt: 'a cat', steps: 2, width: 32, height: 32, seed: 1 })).images;
  const r = await pipe.generate({ prompt: 'a cat', steps: 10, seed: 2, image });
  assert.equal(r.settings.strength, 0.3);
  assert.equal(r.settings.startIndex, 7);
  assert.equal(r.settings.width, 32);
});

test('a VAE with latents_mean / latents_std decodes latents × std / scaling_factor + mean (diffusers\' SDXL)', async () => {
  const opts = { prompt: 'a cat', steps: 2, width: 32, height: 32, seed: 4 };
  const plain = await pipe.generate(opts);
  const cfg = pipe.vae.config;
  const mean = [0.1, -0.2, 0.3, 0];
  const std = [2, 0.5, 1, 1.5];
  cfg.latents_mean = mean;
  cfg.latents_std = std;
  try {
    const r = await pipe.generate(opts);
    assert.deepEqual(Array.from(r.latents.data), Array.from(plain.latents.data), 'denoising is unchanged');
    const sf = pipe.vae.scalingFactor;
    const z = r.latents.data.map((v, i) => v * std[Math.floor(i / 256) % 4]! / sf + mean[Math.floor(i / 256) % 4]!);
    const dec = await pipe.vae.session.run({ latent_sample: f32([1, 4, 16, 16], z) }, ['sample']);
    const want = (dec.outputs.sample!.data as Float32Array).map((v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
    assert.ok(relL2(r.images.data, want) < 1e-5);
    assert.ok(relL2(r.images.data, plain.images.data) > 1e-3);
  } finally {
    cfg.latents_mean = null;
    cfg.latents_std = null;
  }
});
