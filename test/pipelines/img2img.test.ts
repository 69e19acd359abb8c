import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { f32 } from '../../src/runtime/session.js';
import { FluxPipeline } from '../../src/pipelines/flux.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/loader.js';
import { denormalize } from '../../src/pipelines/image.js';
import { SessionDenoiser, type FloatTensor } from '../../src/pipelines/pipeline.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable-diffusion.js';
import { fixture, relL2 } from '../helpers.js';
import { tempDir } from './fixtures.js';

const tmp = tempDir('img2img');
let sd: StableDiffusionPipeline;
let flux: FluxPipeline;

before(async () => {
  const cacheDir = join(tmp.dir, 'cache');
  const a = await loadPipeline(fixture('trained', 'shapes-sd'), { cacheDir, threads: 1 });
  const b = await loadPipeline(fixture('trained', 'shapes-flux'), { cacheDir, threads: 1 });
  assert.ok(a instanceof StableDiffusionPipeline && b instanceof FluxPipeline);
  sd = a;
  flux = b;
});

after(async () => {
  await sd?.release();
  await flux?.release();
  tmp.cleanup();
});

/** The VAE round trip of an image: decode(mean of encode(2x − 1)), in [0, 1]. */
async function roundTrip(p: Pipeline, image: FloatTensor): Promise<Float32Array> {
  const enc = await p.vae.encoder!();
  const x = image.data.map((v) => 2 * v - 1);
  const params = (await enc.run({ sample: f32([...image.dims], x) }, ['latent_parameters'])).outputs.latent_parameters!;
  const mean = (params.data as Float32Array).subarray(0, params.data.length / 2);
  const dims = [1, params.dims[1]! / 2, params.dims[2]!, params.dims[3]!];
  const dec = await p.vae.session.run({ latent_sample: f32(dims, Float32Array.from(mean)) }, ['sample']);
  return denormalize(dec.outputs.sample!.data as Float32Array);
}

const runs = (p: Pipeline) => (p.denoiser as SessionDenoiser).runs;

describe('image-to-image', () => {
  const sdPrompt = { prompt: 'a large yellow square at the center on a blue background', width: 32, height: 32, guidanceScale: 7.5 };
  const fluxPrompt = { prompt: 'a small green triangle at the top on a black background', width: 32, height: 32, maxSequenceLength: 32 };

  test('StableDiffusionPipeline: the start step follows diffusers, a small strength stays near the VAE round trip', async () => {
    const source = (await sd.generate({ ...sdPrompt, steps: 20, seed: 7 })).images;
    const before = runs(sd);
    const r = await sd.generate({ ...sdPrompt, steps: 10, seed: 1, image: source, strength: 0.25 });
    // init_timestep = int(10 × 0.25) = 2: the loop starts at index 8, two steps, CFG batched (one call each)
    assert.equal(r.settings.startIndex, 8);
    assert.equal(r.settings.strength, 0.25);
    assert.equal(runs(sd) - before, 2);
    const rt = await roundTrip(sd, source);
    const small = await sd.generate({ ...sdPrompt, steps: 20, seed: 1, image: source, strength: 0.1 });
    const full = await sd.generate({ ...sdPrompt, prompt: 'a small red circle at the left on a white background', steps: 20, seed: 1, image: source, strength: 1 });
    const near = relL2(small.images.data, rt);
    const far = relL2(full.images.data, rt);
    assert.ok(near < 0.05, `strength 0.1: ${near} from the round trip`);
    assert.ok(far > 4 * near, `strength 1 (another prompt): ${far} vs ${near}`);
    assert.equal(full.settings.startIndex, 0);
  });

  test('a strength that leaves no step, a wrong size or range, and strength without an image are refused', async () => {
    const image = { dims: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32).fill(0.5) };
    const bad = async (o: object, key: string) => assert.rejects(sd.generate({ ...sdPrompt, steps: 10, ...o }), (e: unknown) => e instanceof ConfigError && e.key === key);
    await bad({ image, strength: 0.05 }, 'strength'); // int(10 × 0.05) = 0
    await bad({ image, strength: 1.5 }, 'strength');
    await bad({ strength: 0.5 }, 'strength');
    await bad({ image, width: 64 }, 'image');
    await bad({ image: { dims: [1, 3, 32, 32], data: new Float32Array(3 * 32 * 32).fill(2) } }, 'image');
    await bad({ image: { dims: [3, 3, 32, 32], data: new Float32Array(9 * 32 * 32) } }, 'image');
  });

  test('multistep schedulers start at the begin index (DPM-Solver++, PNDM, UniPC)', async () => {
    const image = (await sd.generate({ ...sdPrompt, steps: 8, seed: 3 })).images;
    const pndm = { ...sd.scheduler.config, _class_name: 'PNDMScheduler', skip_prk_steps: true };
    for (const scheduler of ['DPMSolverMultistepScheduler', pndm, 'UniPCMultistepScheduler']) {
      const r = await sd.generate({ ...sdPrompt, steps: 10, seed: 2, image, strength: 0.5, scheduler });
      const name = JSON.stringify(scheduler).slice(0, 40);
      assert.equal(r.settings.startIndex, 5, name);
      assert.ok(relL2(r.images.data, image.data) < 0.5, name);
    }
  });

  test('FluxPipeline: packed latents from the noised image, the same rule', async () => {
    const source = (await flux.generate({ ...fluxPrompt, steps: 28, seed: 1 })).images;
    const before = runs(flux);
    const small = await flux.generate({ ...fluxPrompt, steps: 28, seed: 4, image: source, strength: 0.1 });
    // FluxImg2ImgPipeline does not floor: t_start = int(28 − 2.8) = 25, three steps
    assert.equal(small.settings.startIndex, 25);
    assert.equal(runs(flux) - before, 3);
    const rt = await roundTrip(flux, source);
    const full = await flux.generate({ ...fluxPrompt, prompt: 'a large red circle at the center on a blue background', steps: 28, seed: 4, image: source, strength: 1 });
    const near = relL2(small.images.data, rt);
    const far = relL2(full.images.data, rt);
    assert.ok(near < 0.1, `strength 0.1: ${near} from the round trip`);
    assert.ok(far > 4 * near, `strength 1 (another prompt): ${far} vs ${near}`);
  });
});
