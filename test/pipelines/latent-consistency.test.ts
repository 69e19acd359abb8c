import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import { LatentConsistencyModelPipeline } from '../../src/pipelines/latent-consistency.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { guidanceScaleEmbedding } from '../../src/pipelines/stable-diffusion.js';
import { createRandomComponent, resolveComponent } from '../../src/random/create-random.js';
import { fixture } from '../helpers.js';
import { assemblePipeline, SpyDenoiser, tempDir, tinyClip } from './fixtures.js';

const tmp = tempDir('lcm');
let pipe: LatentConsistencyModelPipeline;
const cacheDir = join(tmp.dir, 'cache');
const LCM_SCHEDULER = {
  _class_name: 'LCMScheduler', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085, clip_sample: false,
  num_train_timesteps: 1000, original_inference_steps: 50, prediction_type: 'epsilon', set_alpha_to_one: true, steps_offset: 1, timestep_scaling: 10.0,
};

function folder(name: string, className: string, unet: string): string {
  return assemblePipeline(join(tmp.dir, name), {
    className,
    components: {
      unet: ['UNet2DConditionModel', unet], vae: ['AutoencoderKL', fixture('models', 'sd-vae-tiny')],
      text_encoder: ['CLIPTextModel', join(tmp.dir, 'clip')], tokenizer: ['CLIPTokenizer', fixture('tokenizers', 'clip')],
    },
    scheduler: LCM_SCHEDULER,
  });
}

before(async () => {
  const config = { ...JSON.parse(readFileSync(fixture('models', 'sd15-unet-tiny', 'config.json'), 'utf8')), time_cond_proj_dim: 8 };
  createRandomComponent(join(tmp.dir, 'lcm-unet'), resolveComponent({ config }), { seed: 1 });
  createRandomComponent(join(tmp.dir, 'clip'), resolveComponent({ config: tinyClip(32) }), { seed: 2 });
  const p = await loadPipeline(folder('lcm', 'LatentConsistencyModelPipeline', join(tmp.dir, 'lcm-unet')), { cacheDir, threads: 1 });
  assert.ok(p instanceof LatentConsistencyModelPipeline);
  pipe = p;
});

after(async () => {
  await pipe?.release();
  tmp.cleanup();
});

describe('LatentConsistencyModelPipeline', () => {
  test('get_guidance_scale_embedding: sin/cos of 1000 w at log-spaced frequencies', () => {
    const dim = 8;
    const e = guidanceScaleEmbedding(7.5, dim, 2);
    const half = dim / 2;
    for (let k = 0; k < half; k++) {
      const a = 7500 * Math.exp((-k * Math.log(10000)) / (half - 1));
      assert.ok(Math.abs(e[k]! - Math.sin(a)) < 2e-3 && Math.abs(e[half + k]! - Math.cos(a)) < 2e-3, `k=${k}`);
    }
    assert.deepEqual(Array.from(e.subarray(dim)), Array.from(e.subarray(0, dim)));
  });

  test('4 steps, no CFG: w − 1 embedded as timestep_cond, one denoiser call per step', async () => {
    const spy = new SpyDenoiser(pipe.denoiser);
    pipe.denoiser = spy;
    let a, b;
    try {
      a = await pipe.generate({ prompt: 'a cat', width: 32, height: 32, seed: 1 });
      b = await pipe.generate({ prompt: 'a cat', width: 32, height: 32, seed: 1, guidanceScale: 2 });
    } finally {
      pipe.denoiser = spy.inner;
    }
    assert.equal(a.settings.steps, 4);
    assert.equal(a.settings.guidanceScale, 8.5);
    assert.equal(a.settings.cfgMode, null);
    assert.equal(a.settings.scheduler.className, 'LCMScheduler');
    assert.deepEqual(spy.calls.slice(0, 4).map((c) => c.branch), ['cond', 'cond', 'cond', 'cond']);
    assert.equal(spy.calls.length, 8);
    assert.deepEqual(Array.from(spy.prepared[0]!.timestep_cond!.data as Float32Array), Array.from(guidanceScaleEmbedding(7.5, 8, 1)));
    assert.deepEqual(Array.from(spy.prepared[1]!.timestep_cond!.data as Float32Array), Array.from(guidanceScaleEmbedding(1, 8, 1)));
    assert.notDeepEqual(Array.from(a.latents.data), Array.from(b.latents.data), 'the guidance embedding reaches the UNet');
  });

  test('a UNet without timestep_cond cannot drive it', async () => {
    await assert.rejects(
      loadPipeline(folder('plain', 'LatentConsistencyModelPipeline', fixture('models', 'sd15-unet-tiny')), { cacheDir, threads: 1 }),
      (e: unknown) => e instanceof ModelFormatError && e.code === 'COMPONENT_IO' && /timestep_cond/.test(e.message),
    );
  });
});
