import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { convert } from '../../src/models/convert.js';
import { FluxPipeline, latentImageIds, packLatents, unpackLatents } from '../../src/pipelines/flux.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/loader.js';
import type { GenerateOptions, SessionDenoiser } from '../../src/pipelines/pipeline.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile, loopFluxFolder, metadata, readIds, tempDir, tensor } from './fixtures.js';

const tmp = tempDir('flux');
const cacheDir = join(tmp.dir, 'cache');
let fromDiffusers: FluxPipeline;
let fromOnnx: FluxPipeline;
let loop: FluxPipeline;

function asFlux(p: Pipeline): FluxPipeline {
  assert.ok(p instanceof FluxPipeline);
  return p;
}

before(async () => {
  fromDiffusers = asFlux(await loadPipeline(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1 }));
  const onnxDir = join(tmp.dir, 'flux-onnx');
  convert(fixture('pipelines', 'flux-tiny'), onnxDir);
  fromOnnx = asFlux(await loadPipeline(onnxDir, { cacheDir, threads: 1 }));
  loop = asFlux(await loadPipeline(loopFluxFolder(join(tmp.dir, 'loop-flux')), { cacheDir, threads: 1 }));
});

after(async () => {
  for (const p of [fromDiffusers, fromOnnx, loop]) await p?.release();
  tmp.cleanup();
});

describe('loop_flux_dev (flux-transformer-tiny + flux-vae-tiny, FlowMatch dynamic shift, guidance 3.5)', () => {
  test('every step and the image match diffusers', async () => {
    const name = 'loop_flux_dev';
    const md = metadata(name);
    const errs: number[] = [];
    const r = await loop.generate({
      promptEmbeds: tensor(name, 'input.prompt_embeds'),
      pooledPromptEmbeds: tensor(name, 'input.pooled_prompt_embeds'),
      latents: tensor(name, 'input.latents'),
      steps: Number(md.num_inference_steps),
      guidanceScale: Number(md.guidance_scale),
      width: 32,
      height: 32,
      onStep: (s) => {
        const ref = readF32(loopFile(name), `trace.latents.${s.stepIndex}`);
        assert.deepEqual(s.latents.dims, ref.shape); // packed [1, 64, 64]
        errs.push(relL2(s.latents.data, ref.data));
      },
    });
    assert.equal(errs.length, 6);
    for (const [i, e] of errs.entries()) assert.ok(e < 1e-3, `trace.latents.${i}: relL2 ${e}`);
    const e = relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
    assert.ok(e < 1e-3, `output.image relL2 ${e}`);
    assert.ok(Math.abs(r.settings.mu! - Number(md.mu)) < 1e-12, `mu ${r.settings.mu} vs ${md.mu}`);
    assert.ok(loop.hasGuidance);
    assert.deepEqual(r.latents.dims, [1, 16, 16, 16]);
  });
});

describe('e2e_flux_tiny_fox (whole pipeline from the prompt)', () => {
  const name = 'e2e_flux_tiny_fox';
  for (const which of ['diffusers folder', 'smash convert output'] as const) {
    test(`from the ${which}`, async () => {
      const p = which === 'diffusers folder' ? fromDiffusers : fromOnnx;
      const r = await p.generate(e2eOptions(name));
      const e = relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
      assert.ok(e < 1e-3, `output.image relL2 ${e}`);
    });
  }

  test('the tokenizers give the reference ids', () => {
    const prompt = metadata(name).prompt!;
    assert.deepEqual(fromDiffusers.textEncoder!.tokenizer.encode(prompt, { maxLength: 77 }).ids, readIds(name, 'input.clip_input_ids'));
    assert.deepEqual(fromDiffusers.textEncoder2!.tokenizer.encode(prompt, { maxLength: 32 }).ids, readIds(name, 'input.t5_input_ids'));
  });
});

describe('Flux helpers', () => {
  test('pack/unpack are inverse and follow diffusers\' layout', () => {
    const B = 2, C = 3, H = 4, W = 6;
    const x = Float32Array.from({ length: B * C * H * W }, (_, i) => i);
    const p = packLatents(x, B, C, H, W);
    // token (i=0, j=1) of batch 0, channel c=1, offsets (a=1, d=0): x[0, 1, 1, 2]
    const token = 1;
    assert.equal(p[token * 4 * C + 1 * 4 + 1 * 2 + 0], x[(1 * H + 1) * W + 2]);
    assert.deepEqual(unpackLatents(p, B, C, H, W), x);
    assert.deepEqual(Array.from(latentImageIds(4, 6).subarray(0, 12)), [0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 1, 0]);
  });
});

describe('bad input fails before any compute, naming the option', () => {
  const name = 'loop_flux_dev';
  const pe = () => tensor(name, 'input.prompt_embeds');
  const pooled = () => tensor(name, 'input.pooled_prompt_embeds');
  const cases: [string, () => GenerateOptions, string][] = [
    ['width a multiple of the VAE factor but not of twice it (2×2 packing)', () => ({ prompt: 'x', width: 30, height: 32 }), 'width'],
    ['height not a multiple of the factor', () => ({ prompt: 'x', width: 32, height: 33 }), 'height'],
    ['steps < 1', () => ({ prompt: 'x', steps: 0, width: 32, height: 32 }), 'steps'],
    ['negative guidance', () => ({ prompt: 'x', guidanceScale: -0.5, width: 32, height: 32 }), 'guidanceScale'],
    ['maxSequenceLength above 512', () => ({ prompt: 'x', maxSequenceLength: 513, width: 32, height: 32 }), 'maxSequenceLength'],
    ['a negative prompt (Flux has no CFG)', () => ({ prompt: 'x', negativePrompt: 'y', width: 32, height: 32 }), 'negativePrompt'],
    ['packed latents instead of NCHW', () => ({ prompt: 'x', width: 32, height: 32, latents: { dims: [1, 64, 64], data: new Float32Array(4096) } }), 'latents'],
    ['prompt embeddings without pooled ones', () => ({ promptEmbeds: pe(), width: 32, height: 32 }), 'pooledPromptEmbeds'],
    ['pooled embeddings of the wrong width', () => ({ promptEmbeds: pe(), pooledPromptEmbeds: { dims: [1, 16], data: new Float32Array(16) }, width: 32, height: 32 }), 'pooledPromptEmbeds'],
    ['prompt embeddings of the wrong width', () => ({ promptEmbeds: { dims: [1, 12, 16], data: new Float32Array(192) }, pooledPromptEmbeds: pooled(), width: 32, height: 32 }), 'promptEmbeds'],
  ];
  for (const [what, opts, key] of cases) {
    test(what, async () => {
      const d = fromDiffusers.denoiser as SessionDenoiser;
      const before = d.runs + fromDiffusers.encoderRuns;
      await assert.rejects(fromDiffusers.generate(opts()), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        assert.equal(e.key, key);
        return true;
      });
      assert.equal(d.runs + fromDiffusers.encoderRuns, before, 'no session ran');
    });
  }
});
