import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { buildAutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { denormalize, type FloatTensor } from '../../src/pipelines/image.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable-diffusion.js';
import { blendH, blendV, needsTiling, resolveVaeTiling, tiledDecode, type VaeTiling } from '../../src/pipelines/vae-tiling.js';
import { Session } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { loopSdFolder, tempDir, tensor } from './fixtures.js';

const FILE = fixture('vae-tiling', 'tiled.safetensors');
const VAE = fixture('models', 'sd-vae-tiny');
const vaeConfig = ModelConfig.load(VAE).raw as Record<string, unknown>;

/** the decoder sessions of the fixture VAEs, by folder name */
const decoders = new Map<string, Session>();
const tmp = tempDir('vae-tiling');
let sd: StableDiffusionPipeline;

before(async () => {
  for (const name of ['sd-vae-tiny', 'flux-vae-tiny']) {
    const dir = fixture('models', name);
    const { decoder: model } = buildAutoencoderKL(ModelConfig.load(dir), new Weights(Checkpoint.open(dir)));
    decoders.set(name, await Session.create(model!, { threads: 1 }));
  }
  const p = await loadPipeline(loopSdFolder(join(tmp.dir, 'loop-sd')), { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
  assert.ok(p instanceof StableDiffusionPipeline);
  sd = p;
});

after(async () => {
  for (const s of decoders.values()) await s.release();
  await sd?.release();
  tmp.cleanup();
});

async function decode(t: FloatTensor, vae = 'sd-vae-tiny'): Promise<FloatTensor> {
  const out = (await decoders.get(vae)!.run({ latent_sample: { dtype: 'float32', dims: t.dims, data: t.data } }, ['sample'])).outputs.sample!;
  return { dims: [...out.dims], data: out.data as Float32Array };
}

function caseSettings(name: string): { vae: string; tile_sample_min_size: number; tile_latent_min_size: number; tile_overlap_factor: number } {
  return JSON.parse(SafetensorsFile.open(FILE).metadata[`case.${name}`]!);
}

describe("diffusers' AutoencoderKL tiled_decode (models/sd-vae-tiny, models/flux-vae-tiny)", () => {
  for (const [name, option, tiles] of [['a', true, 9], ['b', { tileSampleSize: 24, overlap: 0.25 }, 12], ['c', true, 4]] as const) {
    test(`case ${name}: ${JSON.stringify(option)} matches diffusers' tiled output and differs from the plain decode`, async () => {
      const s = caseSettings(name);
      const vae = s.vae.replace('models/', '');
      const tiling = resolveVaeTiling(option, ModelConfig.load(fixture('models', vae)).raw as Record<string, unknown>, 2)!;
      assert.deepEqual(tiling, { tileSampleMinSize: s.tile_sample_min_size, tileLatentMinSize: s.tile_latent_min_size, tileOverlapFactor: s.tile_overlap_factor });
      const z = readF32(FILE, `input.latents.${name}`);
      assert.ok(needsTiling(z.shape, tiling));
      const shapes: string[] = [];
      const got = await tiledDecode({ dims: z.shape, data: z.data }, tiling, (t) => { shapes.push(t.dims.join('x')); return decode(t, vae); });
      assert.equal(shapes.length, tiles);
      // tiles of one shape run together (a static-shape session is rebound once per shape)
      const runs = shapes.filter((sh, k) => k === 0 || sh !== shapes[k - 1]);
      assert.deepEqual(runs, [...new Set(shapes)]);
      assert.equal(shapes[0], [z.shape[0], z.shape[1], tiling.tileLatentMinSize, tiling.tileLatentMinSize].join('x'));
      const tiled = readF32(FILE, `output.tiled.${name}`);
      const plain = readF32(FILE, `output.untiled.${name}`);
      assert.deepEqual(got.dims, tiled.shape);
      const err = relL2(got.data, tiled.data);
      assert.ok(err <= 1e-5, `relL2 to diffusers' tiled decode ${err}`);
      assert.ok(relL2(got.data, plain.data) > 1e-2, 'the tiled picture should differ from the plain one');
      // the plain decode of the same latents is diffusers' untiled output: the fixture is consistent
      assert.ok(relL2((await decode({ dims: z.shape, data: z.data }, vae)).data, plain.data) <= 1e-5);
    });
  }

  test('blend_v and blend_h fade linearly over the extent, clamped to the smaller tile', () => {
    const a: FloatTensor = { dims: [1, 1, 3, 2], data: Float32Array.of(0, 0, 0, 0, 8, 8) };
    const b: FloatTensor = { dims: [1, 1, 2, 2], data: Float32Array.of(4, 4, 4, 4) };
    blendV(a, b, 4); // extent min(3, 2, 4) = 2: rows 0, 1 of b take a's rows 1, 2 at weights 1, 1/2
    assert.deepEqual([...b.data], [0, 0, 6, 6]);
    const c: FloatTensor = { dims: [1, 1, 1, 4], data: Float32Array.of(0, 0, 2, 6) };
    const d: FloatTensor = { dims: [1, 1, 1, 3], data: Float32Array.of(10, 10, 10) };
    blendH(c, d, 2);
    assert.deepEqual([...d.data], [2, 8, 10]);
  });
});

describe('vaeTiling in generate()', () => {
  const name = 'loop_sd15_euler_cfg';
  const base = () => ({
    promptEmbeds: tensor(name, 'input.prompt_embeds'),
    negativePromptEmbeds: tensor(name, 'input.negative_prompt_embeds'),
    steps: 1,
  });

  test('an image that fits one tile (32 px = sample_size) decodes exactly as without tiling', async () => {
    const latents = tensor(name, 'input.latents');
    assert.deepEqual(latents.dims.slice(2), [16, 16]);
    const plain = await sd.generate({ ...base(), latents, width: 32, height: 32 });
    const encoderRuns = sd.encoderRuns;
    const tiled = await sd.generate({ ...base(), latents, width: 32, height: 32, vaeTiling: true });
    assert.equal(sd.encoderRuns - encoderRuns, 1, 'one decoder run: no tiles were cut');
    assert.deepEqual(tiled.images.data, plain.images.data);
    assert.deepEqual(tiled.settings.vaeTiling, { tileSampleMinSize: 32, tileLatentMinSize: 16, tileOverlapFactor: 0.25 });
    assert.equal(plain.settings.vaeTiling, undefined);
  });

  test('a larger image is decoded tile by tile: what tiledDecode gives from the final latents', async () => {
    const opts = { ...base(), width: 64, height: 48, seed: 5 };
    const plain = await sd.generate(opts);
    const encoderRuns = sd.encoderRuns;
    const tiled = await sd.generate({ ...opts, vaeTiling: { tileSampleSize: 32 } });
    assert.equal(sd.encoderRuns - encoderRuns, 3 * 2, 'latents 24×32 in tiles of 16 at stride 12: 2 rows × 3 columns');
    assert.deepEqual(tiled.latents.data, plain.latents.data);
    assert.deepEqual(tiled.images.dims, [1, 3, 48, 64]);
    const sf = Math.fround(sd.vae.scalingFactor);
    const z = Float32Array.from(tiled.latents.data, (v) => Math.fround(v / sf));
    const tiling: VaeTiling = resolveVaeTiling({ tileSampleSize: 32 }, vaeConfig, 2)!;
    const expected = await tiledDecode({ dims: tiled.latents.dims, data: z }, tiling, decode);
    assert.ok(relL2(tiled.images.data, denormalize(expected.data)) <= 1e-6);
    assert.ok(relL2(tiled.images.data, plain.images.data) > 1e-3, 'tiling changes the picture');
  });

  test('bad options are ConfigErrors naming the option, before any compute', async () => {
    const cases: [unknown, string][] = [
      ['yes', 'vaeTiling'],
      [{ tileSize: 32 }, 'vaeTiling.tileSize'],
      [{ tileSampleSize: 31 }, 'vaeTiling.tileSampleSize'],
      [{ tileSampleSize: 0 }, 'vaeTiling.tileSampleSize'],
      [{ overlap: 1 }, 'vaeTiling.overlap'],
      [{ overlap: -0.1 }, 'vaeTiling.overlap'],
      [{ overlap: Number.NaN }, 'vaeTiling.overlap'],
      // 20 px tiles at overlap 0.25: stride int(10 × 0.75) = 7 latents = 14 px, but each keeps 20 − 5 = 15 px
      [{ tileSampleSize: 20 }, 'vaeTiling.tileSampleSize'],
      [{ tileSampleSize: 32, overlap: 0.3 }, 'vaeTiling.overlap'],
    ];
    const runs = sd.encoderRuns;
    for (const [option, key] of cases) {
      await assert.rejects(sd.generate({ ...base(), vaeTiling: option as never }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.key, key, `${JSON.stringify(option)}: ${e.message}`);
        assert.match(e.message, new RegExp(`^${key.replace('.', '\\.')}:`));
        return true;
      });
    }
    assert.equal(sd.encoderRuns, runs);
    assert.equal(resolveVaeTiling(false, vaeConfig, 2), null);
    assert.equal(resolveVaeTiling(undefined, vaeConfig, 2), null);
    assert.throws(() => resolveVaeTiling(true, { ...vaeConfig, sample_size: undefined }, 2), (e: unknown) => e instanceof ConfigError && e.key === 'vaeTiling.tileSampleSize');
  });
});
