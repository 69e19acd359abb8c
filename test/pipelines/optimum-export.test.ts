/**
 * Folders exported by Hugging Face Optimum's own exporter (scripts/fixtures/export_optimum.py, from
 * test/fixtures/pipelines/*; see test/fixtures/optimum/README.md) run through our pipelines:
 *   current/  optimum-onnx: UNet `timestep` a float32 scalar, Flux `timestep` [step] and int64 ids
 *   legacy/   optimum 1.22: UNet `timestep` int64 [steps], VAE encoder output `latent_sample`
 * With guidance they must give the fixtures' reference images; without, the image of our own
 * conversion of the same checkpoint.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CompatibilityError } from '../../src/errors.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/index.js';
import { f32, Session } from '../../src/runtime/session.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile, tempDir } from './fixtures.js';

const tmp = tempDir('optimum-export');
const open = new Map<string, Promise<Pipeline>>();
after(async () => {
  for (const p of open.values()) await (await p).release();
  tmp.cleanup();
});

const exported = (variant: string, pipeline: string) => fixture('optimum', variant, pipeline);

/** One pipeline per folder for the whole file (a diffusers folder converts into a temporary cache). */
function load(dir: string): Promise<Pipeline> {
  if (!open.has(dir)) open.set(dir, loadPipeline(dir, { threads: 1, cacheDir: join(tmp.dir, 'cache') }));
  return open.get(dir)!;
}

/** The declared timestep (dtype, dims) of a denoiser graph: what makes a variant what it is. */
async function declared(file: string, input: string) {
  const s = await Session.create(file, { threads: 1 });
  try {
    const spec = s.inputs.get(input);
    assert.ok(spec, `${file} declares '${input}'`);
    return { dtype: spec.dtype, rank: spec.dims?.length, outputs: s.outputNames };
  } finally {
    await s.release();
  }
}

// our own conversion of the fixture pipelines: the reference where no Python reference exists
let ownSd: Pipeline;
let ownFlux: Pipeline;
before(async () => {
  ownSd = await load(fixture('pipelines', 'sd15-tiny'));
  ownFlux = await load(fixture('pipelines', 'flux-tiny'));
});

const SD_VARIANTS = [
  { variant: 'current', timestep: { dtype: 'float32', rank: 0 }, latentOutput: 'latent_parameters' },
  { variant: 'legacy', timestep: { dtype: 'int64', rank: 1 }, latentOutput: 'latent_sample' },
] as const;

for (const v of SD_VARIANTS) {
  const dir = exported(v.variant, 'sd15-tiny');

  test(`Optimum ${v.variant} SD export declares timestep ${v.timestep.dtype} rank ${v.timestep.rank} and VAE encoder output ${v.latentOutput}`, async () => {
    const t = await declared(join(dir, 'unet', 'model.onnx'), 'timestep');
    assert.deepEqual({ dtype: t.dtype, rank: t.rank }, v.timestep);
    assert.deepEqual((await declared(join(dir, 'vae_encoder', 'model.onnx'), 'sample')).outputs, [v.latentOutput]);
  });

  test(`Optimum ${v.variant} SD export with guidance 7.5 (a batch of 2) reproduces e2e_sd15_tiny_cat`, async () => {
    const p = await load(dir);
    const r = await p.generate(e2eOptions('e2e_sd15_tiny_cat'));
    const e = relL2(r.images.data, readF32(loopFile('e2e_sd15_tiny_cat'), 'output.image').data);
    assert.ok(e < 1e-3, `relL2 ${e}`);
  });

  test(`Optimum ${v.variant} SD export without guidance, two prompts, matches our own conversion`, async () => {
    const opts = { ...e2eOptions('e2e_sd15_tiny_cat'), guidanceScale: 1, prompt: ['a photo of a cat', 'a photo of a dog'] };
    const lat = opts.latents;
    opts.latents = { dims: [2, ...lat.dims.slice(1)], data: Float32Array.from([...lat.data, ...lat.data.map((x) => -x)]) };
    const ours = await ownSd.generate(opts);
    const theirs = await (await load(dir)).generate(opts);
    const e = relL2(theirs.images.data, ours.images.data);
    assert.ok(e < 1e-3, `relL2 ${e}`);
    // and guidance made a difference: this is not the guided image
    const guided = readF32(loopFile('e2e_sd15_tiny_cat'), 'output.image').data;
    assert.ok(relL2(theirs.images.data.subarray(0, guided.length), guided) > 1e-2);
  });
}

test('a scalar timestep fed different values per batch row is a CompatibilityError naming timestep', async () => {
  const s = await Session.create(join(exported('current', 'sd15-tiny'), 'unet', 'model.onnx'), { threads: 1 });
  try {
    const feeds = {
      sample: f32([2, 4, 16, 16], new Float32Array(2 * 4 * 16 * 16)),
      encoder_hidden_states: f32([2, 77, 32], new Float32Array(2 * 77 * 32)),
    };
    await assert.rejects(s.run({ ...feeds, timestep: f32([2], [999, 500]) }), (e: unknown) => {
      assert.ok(e instanceof CompatibilityError, String(e));
      assert.equal(e.code, 'INPUT_SCALAR');
      assert.match(e.message, /'timestep'/);
      return true;
    });
    // the same two rows with one shared value run
    const out = await s.run({ ...feeds, timestep: f32([2], [999, 999]) });
    assert.deepEqual(out.outputs.out_sample!.dims, [2, 4, 16, 16]);
  } finally {
    await s.release();
  }
});

test('Optimum current Flux export declares timestep [step] float32 and int64 ids', async () => {
  const file = join(exported('current', 'flux-tiny'), 'transformer', 'model.onnx');
  assert.deepEqual(await declared(file, 'timestep').then((t) => [t.dtype, t.rank]), ['float32', 1]);
  assert.deepEqual(await declared(file, 'img_ids').then((t) => [t.dtype, t.rank]), ['int64', 2]);
});

test('Optimum current Flux export with guidance 3.5 reproduces e2e_flux_tiny_fox', async () => {
  const p = await load(exported('current', 'flux-tiny'));
  const r = await p.generate(e2eOptions('e2e_flux_tiny_fox'));
  const e = relL2(r.images.data, readF32(loopFile('e2e_flux_tiny_fox'), 'output.image').data);
  assert.ok(e < 1e-3, `relL2 ${e}`);
});

test('Optimum current Flux export with guidance 1 matches our own conversion', async () => {
  const opts = { ...e2eOptions('e2e_flux_tiny_fox'), guidanceScale: 1 };
  const ours = await ownFlux.generate(opts);
  const theirs = await (await load(exported('current', 'flux-tiny'))).generate(opts);
  const e = relL2(theirs.images.data, ours.images.data);
  assert.ok(e < 1e-3, `relL2 ${e}`);
  const guided = readF32(loopFile('e2e_flux_tiny_fox'), 'output.image').data;
  assert.ok(relL2(theirs.images.data, guided) > 1e-3, 'guidance 1 gives another image than 3.5');
});
