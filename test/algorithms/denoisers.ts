/** The fixture denoisers with their reference inputs, for algorithm tests: build, run, compare. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../../src/ir/graph.js';
import { buildComponent } from '../../src/models/convert.js';
import { loadModel } from '../../src/ir/model-file.js';
import { Generator } from '../../src/tensors/random.js';
import { isOrtTensor, Session, type HostTensor } from '../../src/runtime/session.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import type { Denoiser } from '../../src/pipelines/denoiser.js';
import { componentInfo } from '../../src/algorithms/component.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { fixture, readF32 } from '../helpers.js';
import type { ComponentInfo } from '../../src/algorithms/algorithm.js';

export interface FixtureDenoiser {
  name: string;
  component: ComponentInfo;
  build(): Model;
  feeds: Record<string, HostTensor>;
  output: string;
}

const f32 = (r: { data: Float32Array; shape: number[] }, dims = r.shape): HostTensor => ({ dtype: 'float32', dims, data: r.data });

function inputs(name: string): Record<string, { data: Float32Array; shape: number[] }> {
  const file = fixture('models', name, 'reference.safetensors');
  const out: Record<string, { data: Float32Array; shape: number[] }> = {};
  for (const k of SafetensorsFile.open(file).names) if (k.startsWith('input.') && SafetensorsFile.open(file).tensor(k).dtype === 'float32') out[k.slice(6)] = readF32(file, k);
  return out;
}

export function fluxDenoiser(): FixtureDenoiser {
  const r = inputs('flux-transformer-tiny');
  return {
    name: 'flux-transformer-tiny',
    component: { name: 'transformer', role: 'denoiser', architecture: 'FluxTransformer2DModel' },
    build: () => buildComponent(fixture('models', 'flux-transformer-tiny')).model!,
    feeds: {
      hidden_states: f32(r.hidden_states!),
      encoder_hidden_states: f32(r.encoder_hidden_states!),
      pooled_projections: f32(r.pooled_projections!),
      timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(0.5) },
      img_ids: f32(r.img_ids!, r.img_ids!.shape.slice(1)),
      txt_ids: f32(r.txt_ids!, r.txt_ids!.shape.slice(1)),
      guidance: f32(r.guidance!),
    },
    output: 'out_hidden_states',
  };
}

export function unetDenoiser(): FixtureDenoiser {
  const r = inputs('sd15-unet-tiny');
  const batch = r.sample!.shape[0]!;
  return {
    name: 'sd15-unet-tiny',
    component: { name: 'unet', role: 'denoiser', architecture: 'UNet2DConditionModel' },
    build: () => buildComponent(fixture('models', 'sd15-unet-tiny')).model!,
    feeds: {
      sample: f32(r.sample!),
      encoder_hidden_states: f32(r.encoder_hidden_states!),
      timestep: { dtype: 'float32', dims: [batch], data: new Float32Array(batch).fill(501) },
    },
    output: 'out_sample',
  };
}

export function sd3Denoiser(): FixtureDenoiser {
  const r = inputs('sd3-transformer-tiny');
  const batch = r.hidden_states!.shape[0]!;
  return {
    name: 'sd3-transformer-tiny',
    component: { name: 'transformer', role: 'denoiser', architecture: 'SD3Transformer2DModel' },
    build: () => buildComponent(fixture('models', 'sd3-transformer-tiny')).model!,
    feeds: {
      hidden_states: f32(r.hidden_states!),
      encoder_hidden_states: f32(r.encoder_hidden_states!),
      pooled_projections: f32(r.pooled_projections!),
      timestep: { dtype: 'float32', dims: [batch], data: new Float32Array(batch).fill(500) },
    },
    output: 'out_hidden_states',
  };
}

export function clipEncoder(): FixtureDenoiser {
  const ids = SafetensorsFile.open(fixture('models', 'clip-text-tiny', 'reference.safetensors')).tensor('input.input_ids');
  return {
    name: 'clip-text-tiny',
    component: { name: 'text_encoder', role: 'text_encoder', architecture: 'CLIPTextModel' },
    build: () => buildComponent(fixture('models', 'clip-text-tiny')).model!,
    feeds: { input_ids: { dtype: 'int64', dims: [...ids.shape], data: new BigInt64Array(ids.bytes().slice().buffer) } },
    output: 'last_hidden_state',
  };
}

/** The UNet of `pipelines/sd15-tiny` as Optimum exported it (test/fixtures/optimum), on seeded normal inputs. */
export function optimumUnetDenoiser(): FixtureDenoiser {
  const file = fixture('optimum', 'current', 'sd15-tiny', 'unet', 'model.onnx');
  const probe = loadModel(file);
  const g = new Generator(5);
  return {
    name: 'optimum sd15-tiny unet',
    component: componentInfo('unet', probe),
    build: () => loadModel(file),
    feeds: {
      sample: { dtype: 'float32', dims: [2, 4, 8, 8], data: g.randn(2 * 4 * 8 * 8) },
      encoder_hidden_states: { dtype: 'float32', dims: [2, 7, 32], data: g.randn(2 * 7 * 32) },
      // Optimum's current exporter: a float32 scalar
      timestep: { dtype: 'float32', dims: [], data: Float32Array.of(501) },
    },
    output: probe.graph.outputs[0]!.name,
  };
}

/** Runs a model once on the denoiser's feeds; returns its output as float32. */
export async function runOnce(model: Model, d: FixtureDenoiser): Promise<Float32Array> {
  const s = await Session.create(model, { threads: 1 });
  try {
    const { outputs } = await s.run(d.feeds, [d.output]);
    return outputs[d.output]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** op type -> count over the main graph */
export function opCounts(model: Model): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of model.graph.nodes()) m.set(n.opType, (m.get(n.opType) ?? 0) + 1);
  return m;
}

/**
 * A trained pipeline's denoiser (test/fixtures/trained) on the feeds of one real call: the
 * pipeline generates `prompt` in `steps` steps at 32×32 and the call at `step` is recorded
 * (latents, timestep, text embeddings), so the inputs are what a quantized model meets in use,
 * not normal noise.
 */
export async function capturedDenoiser(pipeline: 'shapes-sd' | 'shapes-flux', prompt: string, { steps, step }: { steps: number; step: number }): Promise<FixtureDenoiser> {
  const dir = fixture('trained', pipeline);
  const cacheDir = mkdtempSync(join(tmpdir(), 'smash-captured-'));
  const pipe = await loadPipeline(dir, { cacheDir, threads: 1 });
  let feeds: Record<string, HostTensor> | undefined;
  try {
    const inner = pipe.denoiser;
    const prepared = new Map<unknown, HostTensor>();
    const recorder: Denoiser = {
      inputNames: inner.inputNames,
      outputNames: inner.outputNames,
      reset: (signature) => inner.reset(signature),
      prepare(host) {
        const out = inner.prepare(host);
        for (const [k, v] of Object.entries(out)) prepared.set(v, host[k]!);
        return out;
      },
      predict(f, ctx, request) {
        if (ctx.stepIndex === step) feeds = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, prepared.get(v) ?? (v as HostTensor)]));
        return inner.predict(f, ctx, request);
      },
    };
    pipe.denoiser = recorder;
    // at the size and T5 length both were trained at (32×32, 32 tokens)
    await pipe.generate({ prompt, seed: 7, steps, width: 32, height: 32, ...(pipeline === 'shapes-flux' ? { maxSequenceLength: 32 } : {}) });
  } finally {
    await pipe.release();
    rmSync(cacheDir, { recursive: true, force: true });
  }
  if (!feeds) throw new Error(`${pipeline}: no denoiser call at step ${step}`);
  for (const [k, v] of Object.entries(feeds)) if (isOrtTensor(v)) throw new Error(`${pipeline}: feed ${k} is an ORT tensor the capture cannot copy`);
  const denoiser = pipeline === 'shapes-sd' ? 'unet' : 'transformer';
  const model = buildComponent(join(dir, denoiser)).model!;
  return {
    name: `${pipeline}-${denoiser}`,
    component: componentInfo(denoiser, model),
    build: () => buildComponent(join(dir, denoiser)).model!,
    feeds: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, { dtype: v.dtype, dims: [...v.dims], data: v.data.slice() }])),
    output: model.graph.outputs[0]!.name,
  };
}
