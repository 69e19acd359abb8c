import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AbortError, ConfigError } from '../../src/errors.js';
import { convert } from '../../src/models/convert.js';
import { i64 } from '../../src/runtime/session.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/loader.js';
import { SessionDenoiser, type DenoiseContext, type Denoiser, type GenerateOptions, type GenerationSignature } from '../../src/pipelines/pipeline.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable-diffusion.js';
import { toInt64 } from '../../src/tokenizers/index.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile, loopSdFolder, metadata, readIds, tempDir, tensor } from './fixtures.js';

const tmp = tempDir('sd');
const cacheDir = join(tmp.dir, 'cache');
let fromDiffusers: StableDiffusionPipeline;
let fromOnnx: StableDiffusionPipeline;
let loop: StableDiffusionPipeline;

function asSd(p: Pipeline): StableDiffusionPipeline {
  assert.ok(p instanceof StableDiffusionPipeline);
  return p;
}

before(async () => {
  fromDiffusers = asSd(await loadPipeline(fixture('pipelines', 'sd15-tiny'), { cacheDir, threads: 1 }));
  const onnxDir = join(tmp.dir, 'sd15-onnx');
  convert(fixture('pipelines', 'sd15-tiny'), onnxDir);
  fromOnnx = asSd(await loadPipeline(onnxDir, { cacheDir, threads: 1 }));
  loop = asSd(await loadPipeline(loopSdFolder(join(tmp.dir, 'loop-sd')), { cacheDir, threads: 1 }));
});

after(async () => {
  for (const p of [fromDiffusers, fromOnnx, loop]) await p?.release();
  tmp.cleanup();
});

const runs = (p: StableDiffusionPipeline) => (p.denoiser as SessionDenoiser).runs + p.encoderRuns;

describe('loop_sd15_euler_cfg (sd15-unet-tiny + sd-vae-tiny, Euler, CFG 7.5)', () => {
  test('every step and the image match diffusers', async () => {
    const name = 'loop_sd15_euler_cfg';
    const md = metadata(name);
    const errs: number[] = [];
    const r = await loop.generate({
      promptEmbeds: tensor(name, 'input.prompt_embeds'),
      negativePromptEmbeds: tensor(name, 'input.negative_prompt_embeds'),
      latents: tensor(name, 'input.latents'),
      steps: Number(md.num_inference_steps),
      guidanceScale: Number(md.guidance_scale),
      width: 32,
      height: 32,
      onStep: (s) => {
        errs.push(relL2(s.latents.data, readF32(loopFile(name), `trace.latents.${s.stepIndex}`).data));
      },
    });
    assert.equal(errs.length, 8);
    for (const [i, e] of errs.entries()) assert.ok(e < 1e-3, `trace.latents.${i}: relL2 ${e}`);
    const e = relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
    assert.ok(e < 1e-3, `output.image relL2 ${e}`);
    assert.deepEqual(r.images.dims, [1, 3, 32, 32]);
    assert.equal(r.settings.scheduler.className, 'EulerDiscreteScheduler');
    assert.equal(r.timings.stepsMs.length, 8);
  });
});

describe('e2e_sd15_tiny_cat (whole pipeline from the prompt)', () => {
  const name = 'e2e_sd15_tiny_cat';
  for (const which of ['diffusers folder', 'smash convert output'] as const) {
    test(`from the ${which}`, async () => {
      const p = which === 'diffusers folder' ? fromDiffusers : fromOnnx;
      const r = await p.generate(e2eOptions(name));
      const e = relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
      assert.ok(e < 1e-3, `output.image relL2 ${e}`);
      assert.equal(r.settings.scheduler.className, 'PNDMScheduler');
    });
  }

  test('the text encoder gives the reference token ids and embeddings', async () => {
    const te = fromDiffusers.textEncoder!;
    const ids = te.tokenizer.encode(metadata(name).prompt!, { maxLength: 77 }).ids;
    assert.deepEqual(ids, readIds(name, 'input.prompt_input_ids'));
    const out = await te.session.run({ input_ids: i64([1, 77], toInt64(ids)) }, ['last_hidden_state']);
    const e = relL2(out.outputs.last_hidden_state!.data as Float32Array, readF32(loopFile(name), 'trace.prompt_embeds').data);
    assert.ok(e < 1e-4, `prompt_embeds relL2 ${e}`);
  });

  test('the diffusers folder is converted once, into the cache', () => {
    assert.ok(fromDiffusers.source.cacheKey);
    assert.ok(fromDiffusers.source.onnxDir.startsWith(cacheDir));
    assert.equal(fromOnnx.source.cacheKey, undefined);
  });
});

describe('generate() behaviour', () => {
  const base: GenerateOptions = { prompt: 'a photo of a cat', steps: 3, width: 32, height: 32 };

  test('one seed gives the same bytes on every run', async () => {
    const a = await fromDiffusers.generate({ ...base, seed: 1234 });
    const b = await fromDiffusers.generate({ ...base, seed: 1234 });
    assert.deepEqual(Buffer.from(a.images.data.buffer), Buffer.from(b.images.data.buffer));
    assert.deepEqual(Buffer.from(a.latents.data.buffer), Buffer.from(b.latents.data.buffer));
    const c = await fromDiffusers.generate({ ...base, seed: 1235 });
    assert.notDeepEqual(Buffer.from(a.images.data.buffer), Buffer.from(c.images.data.buffer));
    assert.equal(a.seed, 1234);
  });

  test('an omitted seed is drawn and reported', async () => {
    const a = await fromDiffusers.generate({ ...base, steps: 1 });
    const b = await fromDiffusers.generate({ ...base, steps: 1, seed: a.seed });
    assert.deepEqual(a.images.data, b.images.data);
  });

  test('two concurrent generate() calls equal the sequential results', async () => {
    const s1 = await fromDiffusers.generate({ ...base, seed: 1 });
    const s2 = await fromDiffusers.generate({ ...base, seed: 2, prompt: 'a dog' });
    const [c1, c2] = await Promise.all([fromDiffusers.generate({ ...base, seed: 1 }), fromDiffusers.generate({ ...base, seed: 2, prompt: 'a dog' })]);
    assert.deepEqual(c1.images.data, s1.images.data);
    assert.deepEqual(c2.images.data, s2.images.data);
  });

  test('abort stops between steps with AbortError and leaves the pipeline usable', async () => {
    const ac = new AbortController();
    const d = fromDiffusers.denoiser as SessionDenoiser;
    const before = d.runs;
    await assert.rejects(
      fromDiffusers.generate({ ...base, steps: 6, signal: ac.signal, onStep: (s) => { if (s.stepIndex === 1) ac.abort(); } }),
      (e: unknown) => e instanceof AbortError && e.code === 'ABORTED',
    );
    assert.equal(d.runs - before, 2);
    const pre = new AbortController();
    pre.abort();
    const r0 = runs(fromDiffusers);
    await assert.rejects(fromDiffusers.generate({ ...base, signal: pre.signal }), AbortError);
    assert.equal(runs(fromDiffusers), r0);
    const r = await fromDiffusers.generate({ ...base, seed: 1 });
    assert.deepEqual(r.images.dims, [1, 3, 32, 32]);
  });

  test('prompt batches and numImagesPerPrompt', async () => {
    const r = await fromDiffusers.generate({ ...base, steps: 2, prompt: ['a cat', 'a dog'], numImagesPerPrompt: 2, seed: 5 });
    assert.deepEqual(r.images.dims, [4, 3, 32, 32]);
    assert.deepEqual(r.latents.dims, [4, 4, 16, 16]);
    const plane = 3 * 32 * 32;
    assert.notDeepEqual(r.images.data.subarray(0, plane), r.images.data.subarray(plane, 2 * plane));
  });

  test('guidance <= 1 runs without CFG; the denoiser seam sees each call', async () => {
    const inner = fromDiffusers.denoiser;
    const calls: { ctx: DenoiseContext; batch: number }[] = [];
    let resets = 0;
    const signatures: GenerationSignature[] = [];
    const spy: Denoiser = {
      inputNames: inner.inputNames,
      outputNames: inner.outputNames,
      prepare: (feeds) => inner.prepare(feeds),
      predict: (feeds, ctx) => {
        calls.push({ ctx, batch: feeds.sample!.dims[0]! });
        return inner.predict(feeds, ctx);
      },
      reset: (sig) => {
        resets++;
        signatures.push(sig);
        inner.reset(sig);
      },
    };
    fromDiffusers.denoiser = spy;
    try {
      await fromDiffusers.generate({ ...base, guidanceScale: 7.5, seed: 3 });
      await fromDiffusers.generate({ ...base, guidanceScale: 1, seed: 3 });
    } finally {
      fromDiffusers.denoiser = inner;
    }
    assert.equal(resets, 2);
    const T = calls.length / 2; // PNDM runs steps + 1 timesteps
    assert.deepEqual(signatures, [{ batch: 1, width: 32, height: 32, steps: T, cfg: 'batched' }, { batch: 1, width: 32, height: 32, steps: T, cfg: null }]);
    assert.ok(calls.every((c) => c.ctx.signature === signatures[c.ctx.branch === 'cfg' ? 0 : 1]));
    assert.ok(calls.slice(0, T).every((c) => c.ctx.branch === 'cfg' && c.batch === 2));
    assert.ok(calls.slice(T).every((c) => c.ctx.branch === 'cond' && c.batch === 1));
    assert.deepEqual(calls.slice(0, T).map((c) => c.ctx.stepIndex), [...Array(T).keys()]);
  });

  test('a scheduler override by class name, config object or file', async () => {
    const euler = JSON.parse(metadata('loop_sd15_euler_cfg').scheduler!);
    const a = await fromDiffusers.generate({ ...base, seed: 9, scheduler: 'EulerDiscreteScheduler' });
    assert.equal(a.settings.scheduler.className, 'EulerDiscreteScheduler');
    assert.equal(a.timings.stepsMs.length, 3);
    const b = await fromDiffusers.generate({ ...base, seed: 9, scheduler: euler });
    assert.equal(b.settings.scheduler.className, 'EulerDiscreteScheduler');
    const file = join(tmp.dir, 'euler.json');
    writeFileSync(file, JSON.stringify(euler));
    const c = await fromDiffusers.generate({ ...base, seed: 9, scheduler: file });
    assert.deepEqual(c.images.data, b.images.data);
    await assert.rejects(fromDiffusers.generate({ ...base, scheduler: 'NoSuchScheduler' }), (e: unknown) => e instanceof ConfigError && e.key === 'scheduler');
  });
});

describe('bad input fails before any compute, naming the option', () => {
  const name = 'loop_sd15_euler_cfg';
  const pe = () => tensor(name, 'input.prompt_embeds');
  const cases: [string, () => GenerateOptions, string, 'e2e' | 'loop'][] = [
    ['width not a multiple of the VAE factor', () => ({ prompt: 'x', width: 33, height: 32 }), 'width', 'e2e'],
    ['height not a multiple of the VAE factor', () => ({ prompt: 'x', width: 32, height: 31 }), 'height', 'e2e'],
    ['steps < 1', () => ({ prompt: 'x', steps: 0, width: 32, height: 32 }), 'steps', 'e2e'],
    ['fractional steps', () => ({ prompt: 'x', steps: 2.5, width: 32, height: 32 }), 'steps', 'e2e'],
    ['steps beyond the training schedule', () => ({ prompt: 'x', steps: 5000, width: 32, height: 32 }), 'steps', 'e2e'],
    ['negative guidance', () => ({ prompt: 'x', guidanceScale: -1, width: 32, height: 32 }), 'guidanceScale', 'e2e'],
    ['latents of the wrong shape', () => ({ prompt: 'x', width: 32, height: 32, latents: { dims: [1, 4, 8, 8], data: new Float32Array(256) } }), 'latents', 'e2e'],
    ['latents whose data does not fill the shape', () => ({ prompt: 'x', width: 32, height: 32, latents: { dims: [1, 4, 16, 16], data: new Float32Array(10) } }), 'latents', 'e2e'],
    ['prompt embeddings of the wrong width', () => ({ promptEmbeds: { dims: [1, 77, 40], data: new Float32Array(77 * 40) }, width: 32, height: 32 }), 'promptEmbeds', 'loop'],
    ['negative embeddings of another shape', () => ({ promptEmbeds: pe(), negativePromptEmbeds: { dims: [1, 76, 32], data: new Float32Array(76 * 32) }, width: 32, height: 32 }), 'negativePromptEmbeds', 'loop'],
    ['prompt and embeddings together', () => ({ prompt: 'x', promptEmbeds: pe(), width: 32, height: 32 }), 'prompt', 'e2e'],
    ['no prompt at all', () => ({ width: 32, height: 32 }), 'prompt', 'e2e'],
    ['a prompt without a text encoder', () => ({ prompt: 'x', width: 32, height: 32 }), 'prompt', 'loop'],
    ['CFG without negative embeddings nor a text encoder', () => ({ promptEmbeds: pe(), width: 32, height: 32 }), 'negativePromptEmbeds', 'loop'],
    ['maxSequenceLength on SD', () => ({ prompt: 'x', maxSequenceLength: 77, width: 32, height: 32 }), 'maxSequenceLength', 'e2e'],
    ['numImagesPerPrompt 0', () => ({ prompt: 'x', numImagesPerPrompt: 0, width: 32, height: 32 }), 'numImagesPerPrompt', 'e2e'],
    ['a fractional seed', () => ({ prompt: 'x', seed: 1.5, width: 32, height: 32 }), 'seed', 'e2e'],
  ];
  for (const [what, opts, key, which] of cases) {
    test(what, async () => {
      const p = which === 'e2e' ? fromDiffusers : loop;
      const before = runs(p);
      const steps: number[] = [];
      await assert.rejects(p.generate({ ...opts(), onStep: (s) => void steps.push(s.stepIndex) }), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        assert.equal(e.key, key);
        assert.match(e.message, new RegExp(key));
        return true;
      });
      assert.equal(runs(p), before, 'no session ran');
      assert.deepEqual(steps, []);
    });
  }
});
