/** Shared by the pipeline tests: temp folders, loop-fixture pipeline folders, fixture readers. */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { after } from 'node:test';
import { createRandomComponent, createRandomPipeline, resolveComponent } from '../../src/random/create-random.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensorData } from '../../src/core/tensor.js';
import type { DenoiseContext, Denoiser, DenoiserFeeds, FloatTensor, PredictRequest } from '../../src/pipelines/pipeline.js';
import type { HostTensor } from '../../src/runtime/session.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { fixture, readF32 } from '../helpers.js';

export function tempDir(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `smash-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A temporary folder whose `cache/` is this test file's SMASH_CACHE (conversions land there, not
 * in the user's cache); the variable is restored and the folder removed after the file's tests.
 */
export function tempCache(tag: string): { dir: string; cleanup: () => void } {
  const tmp = tempDir(tag);
  const saved = process.env.SMASH_CACHE;
  process.env.SMASH_CACHE = join(tmp.dir, 'cache');
  after(() => {
    if (saved === undefined) delete process.env.SMASH_CACHE;
    else process.env.SMASH_CACHE = saved;
    tmp.cleanup();
  });
  return tmp;
}

export function loopFile(name: string): string {
  return fixture('loops', `${name}.safetensors`);
}

export function metadata(name: string): Record<string, string> {
  return SafetensorsFile.open(loopFile(name)).metadata;
}

/** An int64 ids tensor of a loop fixture as numbers. */
export function readIds(name: string, key: string): number[] {
  return Array.from(tensorData(SafetensorsFile.open(loopFile(name)).tensor(key)) as BigInt64Array, Number);
}

export function tensor(name: string, key: string): FloatTensor {
  const t = readF32(loopFile(name), key);
  return { dims: t.shape, data: t.data };
}

export interface FolderSpec {
  className: string;
  /** component name -> [class, absolute folder to link] */
  components: Record<string, [string, string]>;
  /** scheduler config written to scheduler/scheduler_config.json */
  scheduler: Record<string, unknown>;
  /** names listed in model_index.json without a folder */
  listedOnly?: Record<string, string>;
}

/** A pipeline folder assembled from component folders (symlinked) and a scheduler config. */
export function assemblePipeline(dir: string, spec: FolderSpec): string {
  mkdirSync(join(dir, 'scheduler'), { recursive: true });
  writeFileSync(join(dir, 'scheduler', 'scheduler_config.json'), JSON.stringify(spec.scheduler));
  const index: Record<string, unknown> = { _class_name: spec.className, _diffusers_version: '0.30.3' };
  for (const [name, [cls, src]] of Object.entries(spec.components)) {
    symlinkSync(src, join(dir, name), 'dir');
    index[name] = [/Tokenizer|TextModel|T5/.test(cls) ? 'transformers' : 'diffusers', cls];
  }
  for (const [name, cls] of Object.entries(spec.listedOnly ?? {})) index[name] = ['transformers', cls];
  index.scheduler = ['diffusers', String(spec.scheduler._class_name)];
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index, null, 2));
  return dir;
}

/** The loop_sd15_euler_cfg pipeline: models/sd15-unet-tiny + models/sd-vae-tiny + the metadata's Euler config. */
export function loopSdFolder(dir: string, extra: Record<string, [string, string]> = {}): string {
  return assemblePipeline(dir, {
    className: 'StableDiffusionPipeline',
    components: { unet: ['UNet2DConditionModel', fixture('models', 'sd15-unet-tiny')], vae: ['AutoencoderKL', fixture('models', 'sd-vae-tiny')], ...extra },
    scheduler: JSON.parse(metadata('loop_sd15_euler_cfg').scheduler!),
  });
}

/** The loop_flux_dev pipeline: models/flux-transformer-tiny + models/flux-vae-tiny + the metadata's FlowMatch config. */
export function loopFluxFolder(dir: string, extra: Record<string, [string, string]> = {}): string {
  return assemblePipeline(dir, {
    className: 'FluxPipeline',
    components: { transformer: ['FluxTransformer2DModel', fixture('models', 'flux-transformer-tiny')], vae: ['AutoencoderKL', fixture('models', 'flux-vae-tiny')], ...extra },
    scheduler: JSON.parse(metadata('loop_flux_dev').scheduler!),
  });
}

/** generate() options of an e2e fixture: prompt, steps, guidance, size, given latents. */
export function e2eOptions(name: string) {
  const md = metadata(name);
  return {
    prompt: md.prompt!,
    ...(md.negative_prompt !== undefined ? { negativePrompt: md.negative_prompt } : {}),
    steps: Number(md.num_inference_steps),
    guidanceScale: Number(md.guidance_scale),
    width: Number(md.width),
    height: Number(md.height),
    ...(md.max_sequence_length ? { maxSequenceLength: Number(md.max_sequence_length) } : {}),
    latents: tensor(name, 'input.latents'),
  };
}

/**
 * A create-random pipeline (`sdxl`, `sd3`: tokenizers, scheduler, model_index.json) whose denoiser
 * and VAE are fixture folders (symlinked) and whose text encoders are random ones of the given
 * configs (sizes matching the fixture denoiser). Returns the folder.
 */
export function randomPipelineWith(dir: string, name: string, denoiser: [string, string], vae: string, encoders: Record<string, Record<string, unknown>>): string {
  createRandomPipeline(dir, name, { widthMult: 0.05, depth: 1 });
  rmSync(join(dir, denoiser[0]), { recursive: true, force: true });
  symlinkSync(denoiser[1], join(dir, denoiser[0]), 'dir');
  rmSync(join(dir, 'vae'), { recursive: true, force: true });
  symlinkSync(vae, join(dir, 'vae'), 'dir');
  for (const [folder, config] of Object.entries(encoders)) {
    rmSync(join(dir, folder), { recursive: true, force: true });
    createRandomComponent(join(dir, folder), resolveComponent({ config }), { seed: folder.length });
  }
  return dir;
}

/** A small CLIP text config (2 layers, `hidden` wide; `projection`: CLIPTextModelWithProjection). */
export function tinyClip(hidden: number, projection?: number): Record<string, unknown> {
  return {
    architectures: [projection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    hidden_act: projection ? 'gelu' : 'quick_gelu', hidden_size: hidden, intermediate_size: 2 * hidden, layer_norm_eps: 1e-5,
    max_position_embeddings: 77, model_type: 'clip_text_model', num_attention_heads: 2, num_hidden_layers: 2,
    bos_token_id: 0, eos_token_id: 2, pad_token_id: 1, vocab_size: 49408, projection_dim: projection ?? hidden,
  };
}

/** Wraps a pipeline's denoiser: records the host feeds it prepares and each call's context and timestep, and delegates. */
export class SpyDenoiser implements Denoiser {
  prepared: Record<string, HostTensor>[] = [];
  calls: DenoiseContext[] = [];
  timesteps: number[] = [];
  constructor(readonly inner: Denoiser) {}
  get inputNames() { return this.inner.inputNames; }
  get outputNames() { return this.inner.outputNames; }
  prepare(feeds: Record<string, HostTensor>): DenoiserFeeds {
    this.prepared.push(feeds);
    return this.inner.prepare(feeds);
  }
  predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request?: PredictRequest) {
    this.calls.push(ctx);
    const t = feeds.timestep as HostTensor | undefined;
    if (t?.data instanceof Float32Array) this.timesteps.push(t.data[0]!);
    return this.inner.predict(feeds, ctx, request);
  }
  reset(s: Parameters<Denoiser['reset']>[0]) { this.inner.reset(s); }
}
