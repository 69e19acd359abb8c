/**
 * What the text-to-image pipelines share: option types and checks, scheduler resolution, text
 * encoding, and the one denoising loop (DiffusionPipeline.generate) that every pipeline runs,
 * supplying its plan, its prompt encoding, how to predict at a step and how to decode.
 */
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { AbortError, ConfigError, ModelFormatError, SmashError } from '../errors.js';
import { f32 as hostF32, i64, type HostTensor, type Session } from '../runtime/session.js';
import { PeakTracker } from '../runtime/memory.js';
import { createScheduler, parseConfigJson, SUPPORTED_SCHEDULERS, type Scheduler, type SetTimestepsOptions } from '../schedulers/index.js';
import { Generator } from '../tensors/random.js';
import { toInt64, type Tokenizer } from '../tokenizers/index.js';
import { isReporting, type Branch, type CacheStepReport, type CfgMode, type DenoiseContext, type Denoiser, type GenerationSignature } from './denoiser.js';
import { withDefaults, type GenerationDefaults } from './defaults.js';
import { checkFinite, checkFiniteInput } from './finite.js';
import { checkSide } from './limits.js';
import { denormalize, type FloatTensor } from './image.js';
import { needsTiling, resolveVaeTiling, tiledDecode, type VaeTiling, type VaeTilingOption } from './vae-tiling.js';

export {
  SessionDenoiser, StatefulDenoiser, sameSignature,
  type Branch, type CfgMode, type DenoiseContext, type Denoiser, type DenoiserFeeds, type GenerationSignature, type Prediction, type PredictRequest,
} from './denoiser.js';

export type { FloatTensor } from './image.js';

/** Per-step progress: what the callback of `generate()` receives. */
export interface StepInfo {
  stepIndex: number;
  numSteps: number;
  timestep: number;
  /** latents after this step, as the denoiser sees them (Flux: packed [B, N, 4C]) */
  latents: FloatTensor;
  /** wall time of this step (denoiser + guidance + scheduler) */
  ms: number;
}

export interface GenerateOptions {
  /** one prompt or one per image batch entry; omit when giving `promptEmbeds` */
  prompt?: string | string[];
  /** Stable Diffusion only (classifier-free guidance); default '' */
  negativePrompt?: string | string[];
  /** Stable Diffusion with CFG: the two guidance branches as one batched call (default: the pipeline's `cfgMode`) or two calls */
  cfgMode?: CfgMode;
  /** denoising steps (default: 50 for SD, 28 for Flux, as diffusers) */
  steps?: number;
  /** SD: CFG scale, on when > 1 (default 7.5); Flux dev: the guidance embedding (default 7.0, diffusers 0.30's) */
  guidanceScale?: number;
  /** pixels, multiples of `pipeline.sizeMultiple` (default: diffusers' defaults) */
  width?: number;
  height?: number;
  /** seed of the initial noise (and of stochastic schedulers); random when omitted, reported in the result */
  seed?: number;
  numImagesPerPrompt?: number;
  /** a scheduler class name (uses the pipeline's config, as diffusers' from_config), a config object, or a config JSON file */
  scheduler?: string | Record<string, unknown>;
  /** Flux: T5 tokens (default 512, at most 512) */
  maxSequenceLength?: number;
  /** initial noise, unpacked NCHW [batch, C, h, w], before any scheduler scaling (diffusers' `latents`); with `image`, the noise added to the encoded image */
  latents?: FloatTensor;
  /**
   * Image-to-image: the starting picture, [1 or prompts, 3, H, W] in [0, 1] (what `readPng` and
   * `generate` give); H and W are the default height and width. Needs the VAE encoder.
   */
  image?: FloatTensor;
  /** Image-to-image: how much of the schedule runs, in (0, 1] (diffusers' `strength`; default per pipeline) */
  strength?: number;
  /**
   * Tiled VAE decoding (diffusers' `vae.enable_tiling()`): `true` for diffusers' tiles (the VAE's
   * sample_size, overlap 0.25) or `{ tileSampleSize, overlap }`; bounds the decode's memory by the
   * tile, not the image, and changes the picture slightly. Off by default.
   */
  vaeTiling?: VaeTilingOption;
  /** [batch, seq, dim]; replaces `prompt` */
  promptEmbeds?: FloatTensor;
  /** SD: [batch, seq, dim], same shape as promptEmbeds */
  negativePromptEmbeds?: FloatTensor;
  /** Flux, SDXL, SD3: [batch, dim], required with promptEmbeds */
  pooledPromptEmbeds?: FloatTensor;
  /** SDXL, SD3: [batch, dim], with negativePromptEmbeds */
  negativePooledPromptEmbeds?: FloatTensor;
  signal?: AbortSignal;
  onStep?: (info: StepInfo) => void | Promise<void>;
}

export interface Timings {
  totalMs: number;
  textEncodeMs: number;
  denoiseMs: number;
  decodeMs: number;
  stepsMs: number[];
  /**
   * Sessions created again during this call for its sizes (ortCompile's static shapes bound to
   * other sizes): their creation time, already inside the stage times above. 0 when none.
   */
  reshapeMs: number;
  /** peak resident memory of the process during each stage (see runtime/memory.ts) */
  peakRssBytes: { textEncode: number; denoise: number; decode: number };
}

/** Everything that determined the image. */
export interface GenerationSettings {
  pipeline: string;
  prompt: string[] | null;
  negativePrompt: string[] | null;
  steps: number;
  guidanceScale: number;
  /** how classifier-free guidance ran; null without it */
  cfgMode: CfgMode | null;
  width: number;
  height: number;
  seed: number;
  numImagesPerPrompt: number;
  scheduler: { className: string; config: Record<string, unknown> };
  timesteps: number[];
  maxSequenceLength?: number;
  /** Flux: the dynamic shift used */
  mu?: number;
  latentsGiven: boolean;
  promptEmbedsGiven: boolean;
  /** image-to-image: the strength, and the index into `timesteps` where denoising began */
  strength?: number;
  startIndex?: number;
  /** with `vaeTiling`: the tiles the decode used (also when the image fit one tile and none was cut) */
  vaeTiling?: VaeTiling;
}

export interface GenerateResult {
  /** [N, 3, H, W] in [0, 1] */
  images: FloatTensor;
  /** final latents, unpacked NCHW, before VAE scaling */
  latents: FloatTensor;
  seed: number;
  settings: GenerationSettings;
  timings: Timings;
  /** with a cacher: per step and branch, the parts computed and reused */
  cache?: CacheStepReport[];
}

// ---------------------------------------------------------------------------------------------
// Option checks: all run before any compute and name the option.

export function badOption(key: string, message: string, code = 'BAD_OPTION'): ConfigError {
  return new ConfigError(code, `${key}: ${message}`, key);
}

export function checkInt(key: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw badOption(key, `must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function checkNonNegative(key: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw badOption(key, `must be a finite number >= 0, got ${JSON.stringify(v)}`);
  return v;
}

export function checkSize(key: 'width' | 'height', v: unknown, multiple: number, why: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < multiple || v % multiple !== 0) {
    throw badOption(key, `must be a positive multiple of ${multiple} (${why}), got ${JSON.stringify(v)}`, 'BAD_SIZE');
  }
  checkSide(key, v);
  return v;
}

/** A prompt or prompt list as a non-empty string array. */
export function checkPrompts(key: string, v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === 'string')) {
    throw badOption(key, 'must be a string or a non-empty array of strings');
  }
  return list as string[];
}

/** Checks a tensor's shape; `null` entries match any size. */
export function checkTensor(key: string, t: unknown, expect: readonly (number | null)[], what: string): FloatTensor {
  const x = t as FloatTensor;
  if (!x || typeof x !== 'object' || !Array.isArray(x.dims) || !(x.data instanceof Float32Array)) {
    throw badOption(key, 'must be { dims: number[], data: Float32Array }', 'BAD_TENSOR');
  }
  const n = x.dims.reduce((a, b) => a * b, 1);
  const ok = x.dims.length === expect.length && expect.every((e, i) => e === null || e === x.dims[i]) && x.data.length === n;
  if (!ok) {
    const want = `[${expect.map((e) => e ?? '*').join(', ')}]`;
    throw badOption(key, `expected shape ${want} (${what}), got [${x.dims.join(', ')}]${x.data.length !== n ? ` with ${x.data.length} values` : ''}`, 'BAD_SHAPE');
  }
  checkFiniteInput(key, x.data);
  return x;
}

export function checkSeed(v: unknown): number {
  if (v === undefined) return randomInt(0, 2 ** 32);
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badOption('seed', `must be an integer, got ${JSON.stringify(v)}`);
  return v;
}

export function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const r = signal.reason;
    throw new AbortError(r instanceof Error ? `aborted: ${r.message}` : typeof r === 'string' ? `aborted: ${r}` : 'aborted');
  }
}

// ---------------------------------------------------------------------------------------------
// Schedulers

export interface SchedulerSpec {
  className: string;
  config: Record<string, unknown>;
}

/**
 * The scheduler a call uses: the pipeline's, or the override (class name over the pipeline's
 * config, a config object, or a config JSON file). Built once here, so a bad config fails before
 * compute; generate() builds a fresh instance from the spec each call.
 */
export function resolveScheduler(base: SchedulerSpec, override: GenerateOptions['scheduler']): SchedulerSpec {
  let spec: SchedulerSpec;
  if (override === undefined) spec = base;
  else if (typeof override === 'string') {
    if (/\.json$/i.test(override) || existsSync(override)) {
      let raw: unknown;
      try {
        raw = parseConfigJson(readFileSync(override, 'utf8'));
      } catch (e) {
        throw badOption('scheduler', `cannot read scheduler config ${override}: ${(e as Error).message}`, 'SCHEDULER_CONFIG_INVALID');
      }
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badOption('scheduler', `${override} is not a JSON object`, 'SCHEDULER_CONFIG_INVALID');
      const cls = (raw as Record<string, unknown>)._class_name;
      if (typeof cls !== 'string') throw badOption('scheduler', `${override} has no _class_name (supported: ${SUPPORTED_SCHEDULERS.join(', ')})`, 'SCHEDULER_CLASS_MISSING');
      spec = { className: cls, config: raw as Record<string, unknown> };
    } else {
      if (!SUPPORTED_SCHEDULERS.includes(override)) {
        throw badOption('scheduler', `'${override}' is neither a scheduler class (${SUPPORTED_SCHEDULERS.join(', ')}) nor a config file`, 'SCHEDULER_UNSUPPORTED');
      }
      spec = { className: override, config: base.config };
    }
  } else if (typeof override === 'object' && override !== null && !Array.isArray(override)) {
    const cls = override._class_name;
    if (typeof cls !== 'string') throw badOption('scheduler', `the config object has no _class_name (supported: ${SUPPORTED_SCHEDULERS.join(', ')})`, 'SCHEDULER_CLASS_MISSING');
    spec = { className: cls, config: override };
  } else throw badOption('scheduler', 'must be a class name, a config object or a config file path');
  makeScheduler(spec); // validates
  return spec;
}

export function makeScheduler(spec: SchedulerSpec): Scheduler {
  try {
    return createScheduler(spec.config, spec.className);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.code, `scheduler ${spec.className}: ${e.message}`, 'scheduler');
    throw e;
  }
}

/** setTimesteps with a bad step count reported as the `steps` option. */
export function setSchedule(s: Scheduler, steps: number, opts?: SetTimestepsOptions): void {
  try {
    s.setTimesteps(steps, opts);
  } catch (e) {
    if (e instanceof SmashError && e.code === 'SCHEDULER_STEPS') throw badOption('steps', e.message);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Small tensor helpers

/** Repeats each of `b` rows (of `row` values) `n` times in place order: p0,p0,p1,p1 (diffusers' repeat+view). */
export function repeatRows(data: Float32Array, b: number, n: number): Float32Array {
  if (n === 1) return data;
  const row = data.length / b;
  const out = new Float32Array(data.length * n);
  for (let i = 0; i < b; i++) for (let j = 0; j < n; j++) out.set(data.subarray(i * row, (i + 1) * row), (i * n + j) * row);
  return out;
}

export function concat(...parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function filled(n: number, v: number): Float32Array {
  return new Float32Array(n).fill(v);
}

export function asF32(t: HostTensor, what: string): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new ModelFormatError('OUTPUT_DTYPE', `${what} returned ${t.dtype}, expected float32`);
  checkFinite(`the ${what}`, t.data);
  return t.data;
}

// ---------------------------------------------------------------------------------------------

export interface TextEncoderComponent {
  name: string;
  session: Session;
  tokenizer: Tokenizer;
  config: Record<string, unknown>;
}

export interface VaeDecoderComponent {
  session: Session;
  config: Record<string, unknown>;
  scalingFactor: number;
  shiftFactor: number;
  /** the VAE encoder's session (image-to-image), opened on first use; undefined when the folder has none */
  encoder?: () => Promise<Session>;
}

/** Where a pipeline came from. */
export interface PipelineSource {
  /** the folder given to loadPipeline */
  dir: string;
  /** the ONNX folder the sessions were created from (the cache entry for a diffusers folder) */
  onnxDir: string;
  /** the cache key, for a converted diffusers folder */
  cacheKey?: string;
  /** for a diffusers folder: true when this load converted it, false when the cache had it */
  converted?: boolean;
}

/** The resolved options of one generate() call: what the loop and the reported settings read. */
export interface PlanBase {
  opts: GenerateOptions;
  prompts: string[] | null;
  /** the negative prompts, when CFG runs on prompts */
  negatives: string[] | null;
  /** prompts (or embedding rows) */
  batch: number;
  /** images per prompt */
  n: number;
  steps: number;
  guidance: number;
  /** how CFG runs; null without CFG */
  cfg: CfgMode | null;
  width: number;
  height: number;
  seed: number;
  scheduler: SchedulerSpec;
  /** setTimesteps' options (Flux: sigmas and mu) */
  schedule: SetTimestepsOptions;
  timesteps: number[];
  maxSequenceLength?: number;
  mu?: number;
  /** image-to-image: the checked image and strength, and the first step index (diffusers' t_start) */
  image?: { tensor: FloatTensor; strength: number; startIndex: number };
  /** the resolved `vaeTiling` option; null for a plain decode */
  vaeTiling: VaeTiling | null;
}

/** The options every pipeline checks alike (size, steps, seed, prompt or embeddings), resolved. */
export type CommonPlan = Pick<PlanBase, 'opts' | 'prompts' | 'batch' | 'n' | 'steps' | 'guidance' | 'width' | 'height' | 'seed' | 'vaeTiling'>;

/** A step as the pipeline's prediction sees it: the denoiser context without the branch. */
export type StepContext = Omit<DenoiseContext, 'branch'>;

/** What a pipeline hands the loop for one generation. */
export interface Denoising {
  /** the initial latents as the denoiser sees them (Flux: packed) */
  latents: Float32Array;
  /** their shape, as the step callback reports it */
  dims: readonly number[];
  /** the model output the scheduler steps with, from the scaled model input (guidance included) */
  predict(modelInput: Float32Array, step: StepContext): Promise<Float32Array>;
  /** final latents -> images, and the latents unpacked NCHW before VAE scaling */
  decode(latents: Float32Array): Promise<{ images: FloatTensor; latents: FloatTensor }>;
}

/**
 * Base of the text-to-image pipelines, typed by the pipeline's plan `P` and its prompt
 * embeddings `E`. `generate()` validates synchronously (bad input fails before any compute), then
 * runs under a promise-chain lock, so concurrent calls on one pipeline run one after the other;
 * all per-call state (scheduler, generator, latents) is local to the call. The loop is here, once.
 */
export abstract class DiffusionPipeline<P extends PlanBase, E> {
  abstract readonly className: string;
  /** The denoiser the loop calls; replace it with a wrapper (see denoiser.ts) to add caching. */
  denoiser: Denoiser;
  readonly vae: VaeDecoderComponent;
  /** Pixels per latent: the VAE's downsampling, 2**(len(block_out_channels)-1). */
  readonly vaeScale: number;
  /** Image sizes must be multiples of this: the VAE's downsampling × the latent patch size (diffusers' vae_scale_factor for Flux). */
  readonly sizeMultiple: number;
  readonly defaultSize: { width: number; height: number };
  /** Latent channels as generate()'s `latents` option takes them (unpacked NCHW): in_channels / patchSize². */
  readonly latentChannels: number;
  /** Text-encoder and VAE ONNX runs so far (the denoiser counts its own). */
  encoderRuns = 0;
  /** The folder's generation defaults (smash.json), under the caller's options. */
  generationDefaults: GenerationDefaults = {};
  /**
   * Low-memory mode (loadPipeline's `lowMemory`): every session is unloaded after each stage and
   * created again by the stage that runs it, so one component's weights are resident at a time.
   */
  lowMemory = false;
  private tail: Promise<unknown> = Promise.resolve();

  /** `layout`: the latent patch size (Flux packs 2×2) and the default size in latents (diffusers' default_sample_size). */
  protected constructor(
    readonly source: PipelineSource,
    readonly scheduler: SchedulerSpec,
    c: { denoiser: Denoiser; denoiserConfig: Record<string, unknown>; vae: VaeDecoderComponent },
    protected readonly sessions: Session[],
    protected readonly onWarning: (message: string) => void,
    layout: { patchSize: number; defaultSampleSize: number },
  ) {
    this.denoiser = c.denoiser;
    this.vae = c.vae;
    this.vaeScale = 2 ** ((c.vae.config.block_out_channels as unknown[]).length - 1);
    const p2 = layout.patchSize ** 2;
    this.sizeMultiple = this.vaeScale * layout.patchSize;
    this.defaultSize = { width: layout.defaultSampleSize * this.vaeScale, height: layout.defaultSampleSize * this.vaeScale };
    this.latentChannels = Number(c.denoiserConfig.in_channels ?? 4 * p2) / p2;
  }

  /** Validates and resolves options; must not compute. */
  protected abstract plan(opts: GenerateOptions): P;
  /** The prompt embeddings of a call (text encoders, or the given embeddings repeated per image). */
  protected abstract encodePrompt(plan: P): Promise<E>;
  /** Initial latents, constant denoiser feeds, the prediction at a step and the decode, for one call. */
  protected abstract prepareDenoising(plan: P, embeds: E, scheduler: Scheduler, generator: Generator): Denoising;

  /** Generates images; see GenerateOptions. */
  generate(opts: GenerateOptions = {}): Promise<GenerateResult> {
    let plan: P;
    try {
      checkAbort(opts.signal);
      plan = this.plan(withDefaults(opts, this.generationDefaults));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.exclusive(async () => {
      checkAbort(opts.signal);
      return this.execute(plan);
    });
  }

  /** The denoising loop. */
  private async execute(plan: P): Promise<GenerateResult> {
    const o = plan.opts;
    const t0 = performance.now();
    const reshaped = this.sessions.reduce((a, s) => a + s.reshapeMs, 0);
    let mem = new PeakTracker();
    const embeds = await this.encodePrompt(plan).finally(() => { mem.stop(); return this.endStage(); });
    const textEncodePeak = mem.stop();
    const t1 = performance.now();
    checkAbort(o.signal);
    mem = new PeakTracker();
    let latents: Float32Array;
    let run: Denoising;
    const scheduler = makeScheduler(plan.scheduler);
    const stepsMs: number[] = [];
    try {
      scheduler.setTimesteps(plan.steps, plan.schedule);
      const start = plan.image?.startIndex ?? 0;
      if (start > 0) scheduler.setBeginIndex(start);
      const generator = new Generator(plan.seed);
      // image-to-image: the encoded picture (its VAE sample drawn before the noise, as diffusers does)
      if (plan.image) this.imageLatents = await this.encodeImage(plan, generator);
      const T = scheduler.timesteps.length;
      const signature: GenerationSignature = { batch: plan.batch * plan.n, width: plan.width, height: plan.height, steps: T, cfg: plan.cfg };
      this.denoiser.reset(signature);
      run = this.prepareDenoising(plan, embeds, scheduler, generator);
      this.imageLatents = undefined;
      latents = run.latents;
      for (let i = start; i < T; i++) {
        const ts = performance.now();
        const timestep = scheduler.timesteps[i]!;
        const step: StepContext = { stepIndex: i, numSteps: T, timestep, sigma: scheduler.sigmas?.[i], signature };
        const out = await run.predict(scheduler.scaleModelInput(latents, i), step);
        latents = scheduler.step(out, i, latents, { generator });
        checkFinite(`denoising step ${i + 1} of ${T} (guidance and the scheduler step)`, latents);
        const ms = performance.now() - ts;
        stepsMs.push(ms);
        if (o.onStep) await o.onStep({ stepIndex: i, numSteps: T, timestep, latents: { dims: run.dims, data: latents }, ms });
        checkAbort(o.signal);
      }
    } catch (e) {
      mem.stop();
      await this.endStage();
      throw e;
    }
    await this.endStage();
    const denoisePeak = mem.stop();
    const t2 = performance.now();
    mem = new PeakTracker();
    const decoded = await run.decode(latents).finally(() => { mem.stop(); return this.endStage(); });
    const decodePeak = mem.stop();
    const t3 = performance.now();

    return {
      images: decoded.images,
      latents: decoded.latents,
      seed: plan.seed,
      settings: {
        pipeline: this.className,
        prompt: plan.prompts,
        negativePrompt: plan.negatives,
        steps: plan.steps,
        guidanceScale: plan.guidance,
        cfgMode: plan.cfg,
        width: plan.width,
        height: plan.height,
        seed: plan.seed,
        numImagesPerPrompt: plan.n,
        scheduler: { className: scheduler.className, config: scheduler.config },
        timesteps: plan.timesteps,
        ...(plan.maxSequenceLength !== undefined ? { maxSequenceLength: plan.maxSequenceLength } : {}),
        ...(plan.mu !== undefined ? { mu: plan.mu } : {}),
        latentsGiven: !!o.latents,
        promptEmbedsGiven: !!o.promptEmbeds,
        ...(plan.image ? { strength: plan.image.strength, startIndex: plan.image.startIndex } : {}),
        ...(plan.vaeTiling ? { vaeTiling: plan.vaeTiling } : {}),
      },
      timings: {
        totalMs: t3 - t0, textEncodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: t3 - t2, stepsMs,
        reshapeMs: this.sessions.reduce((a, s) => a + s.reshapeMs, 0) - reshaped,
        peakRssBytes: { textEncode: textEncodePeak, denoise: denoisePeak, decode: decodePeak },
      },
      ...(isReporting(this.denoiser) ? { cache: this.denoiser.cacheReport() } : {}),
    };
  }

  /**
   * The checks every pipeline shares: steps, guidance, size, images per prompt, seed, and a
   * prompt or prompt embeddings (`embedsWidth` wide). Pipeline-specific checks go before or after.
   */
  protected planCommon(o: GenerateOptions, d: { steps: number; guidance: number; embedsWidth: number; embedsWhat: string; noPrompt: string }): CommonPlan {
    const steps = checkInt('steps', o.steps ?? d.steps, 1);
    const guidance = checkNonNegative('guidanceScale', o.guidanceScale ?? d.guidance);
    const why = `the pipeline's vae_scale_factor`;
    if (o.image !== undefined) checkTensor('image', o.image, [null, 3, null, null], 'images, RGB, height, width');
    if (o.strength !== undefined && o.image === undefined) throw badOption('strength', 'applies to image-to-image only: give an image too');
    const width = checkSize('width', o.width ?? o.image?.dims[3] ?? this.defaultSize.width, this.sizeMultiple, why);
    const height = checkSize('height', o.height ?? o.image?.dims[2] ?? this.defaultSize.height, this.sizeMultiple, why);
    const n = checkInt('numImagesPerPrompt', o.numImagesPerPrompt ?? 1, 1, 4096);
    const seed = checkSeed(o.seed);
    const vaeTiling = resolveVaeTiling(o.vaeTiling, this.vae.config, this.vaeScale);
    let prompts: string[] | null = null;
    let batch: number;
    if (o.prompt !== undefined && o.promptEmbeds !== undefined) throw badOption('prompt', 'give either prompt or promptEmbeds, not both');
    if (o.promptEmbeds !== undefined) {
      batch = checkTensor('promptEmbeds', o.promptEmbeds, [null, null, d.embedsWidth], d.embedsWhat).dims[0]!;
    } else {
      if (o.prompt === undefined) throw badOption('prompt', d.noPrompt);
      prompts = checkPrompts('prompt', o.prompt);
      batch = prompts.length;
    }
    return { opts: o, prompts, batch, n, steps, guidance, width, height, seed, vaeTiling };
  }

  /** Image-to-image strength when a call gives none (diffusers' img2img pipelines' defaults). */
  protected defaultStrength = 0.8;
  /**
   * diffusers' SD and SDXL img2img floor init_timestep (int(steps × strength)); its SD3 and Flux
   * img2img do not (t_start = int(steps − steps × strength)), so they may run one step more.
   */
  protected floorInitTimestep = true;
  /** the encoded image of the running image-to-image call, for initialLatents */
  private imageLatents?: Float32Array;

  /**
   * Checks the `image` and `strength` options against the call's size and prompts and applies
   * diffusers' rule: init_timestep = min(int(steps × strength), steps) (not floored where
   * `floorInitTimestep` is false), the loop starts at int(steps − init_timestep); a strength that
   * leaves no step is refused. `timesteps`: the schedule.
   */
  protected planImage(c: CommonPlan, timesteps: readonly number[]): PlanBase['image'] {
    const o = c.opts;
    if (o.image === undefined) return undefined;
    if (!this.vae.encoder) throw badOption('image', 'this pipeline folder has no VAE encoder (vae_encoder/model.onnx): image-to-image needs it', 'VAE_ENCODER_MISSING');
    const t = checkTensor('image', o.image, [null, 3, c.height, c.width], 'images, RGB, the call\'s height and width (no resizing)');
    if (t.dims[0] !== 1 && t.dims[0] !== c.batch) throw badOption('image', `has ${t.dims[0]} images for ${c.batch} prompts: give 1 or one per prompt`, 'BAD_SHAPE');
    if (t.data.some((v) => v < 0 || v > 1)) throw badOption('image', 'values must lie in [0, 1]');
    const strength = o.strength ?? this.defaultStrength;
    if (typeof strength !== 'number' || !Number.isFinite(strength) || strength < 0 || strength > 1) throw badOption('strength', `must be a number in [0, 1], got ${JSON.stringify(strength)}`);
    const product = c.steps * strength;
    const initTimestep = Math.min(this.floorInitTimestep ? Math.floor(product) : product, c.steps);
    const startIndex = Math.trunc(Math.max(c.steps - initTimestep, 0));
    if (c.steps - startIndex < 1 || startIndex >= timesteps.length) {
      const rule = this.floorInitTimestep ? `int(steps × strength) = ${initTimestep}` : `steps × strength = ${product}`;
      throw badOption('strength', `${strength} with ${c.steps} steps leaves no denoising step (${rule}): raise strength or steps`);
    }
    return { tensor: t, strength, startIndex };
  }

  /**
   * The image's latents, [B, C, h, w] with B the call's images: the VAE encoder on 2x − 1, a
   * sample of its distribution (mean + exp(logvar / 2) · noise; an encoder that samples inside
   * the graph gives `latent_sample`), then (z − shift_factor) × scaling_factor.
   */
  protected async encodeImage(plan: PlanBase, generator: Generator): Promise<Float32Array> {
    const img = plan.image!.tensor;
    const [rows, , H, W] = img.dims as [number, number, number, number];
    const x = new Float32Array(img.data.length);
    for (let i = 0; i < x.length; i++) x[i] = Math.fround(Math.fround(2 * img.data[i]!) - 1);
    const session = await this.vae.encoder!();
    this.encoderRuns++;
    const out = session.outputNames.includes('latent_parameters') ? 'latent_parameters' : 'latent_sample';
    const r = (await session.run({ sample: hostF32([rows, 3, H, W], x) }, [out])).outputs[out]!;
    const p = asF32(r, 'vae_encoder');
    const C = this.latentChannels;
    const plane = (H / this.vaeScale) * (W / this.vaeScale);
    let z: Float32Array;
    if (out === 'latent_sample') z = p;
    else {
      z = new Float32Array(rows * C * plane);
      const eps = generator.randn(z.length);
      for (let b = 0; b < rows; b++) {
        for (let k = 0; k < C * plane; k++) {
          const mean = p[b * 2 * C * plane + k]!;
          const logvar = Math.min(Math.max(p[b * 2 * C * plane + C * plane + k]!, -30), 20); // diffusers clamps
          z[b * C * plane + k] = Math.fround(mean + Math.fround(Math.fround(Math.exp(0.5 * logvar)) * eps[b * C * plane + k]!));
        }
      }
    }
    const sf = Math.fround(this.vae.scalingFactor);
    const sh = Math.fround(this.vae.shiftFactor);
    for (let i = 0; i < z.length; i++) z[i] = Math.fround(Math.fround(z[i]! - sh) * sf);
    // one image for every prompt, or one per prompt; then each repeated per image (diffusers' order)
    return repeatRows(rows === 1 ? repeatRows(z, 1, plan.batch) : z, plan.batch, plan.n);
  }

  /**
   * The latents the loop starts from, unpacked NCHW: the initial noise × init_noise_sigma
   * (`scaleBySigma`: SD's pipelines; the flow-matching ones do not), or for image-to-image the
   * encoded image noised to the first step's level (add_noise / scale_noise).
   */
  protected initialLatents(plan: P, scheduler: Scheduler, generator: Generator, scaleBySigma: boolean): { data: Float32Array; dims: number[] } {
    const noise = this.initialNoise(plan, generator);
    if (this.imageLatents) return { data: scheduler.addNoise(this.imageLatents, noise.data, plan.image!.startIndex), dims: noise.dims };
    const sigma0 = Math.fround(scheduler.initNoiseSigma);
    if (scaleBySigma && sigma0 !== 1) for (let i = 0; i < noise.data.length; i++) noise.data[i] = Math.fround(noise.data[i]! * sigma0);
    return noise;
  }

  /** Checks the `latents` option: unpacked NCHW initial noise of the call's shape. */
  protected checkLatents(c: CommonPlan): void {
    if (c.opts.latents === undefined) return;
    const f = this.vaeScale;
    checkTensor('latents', c.opts.latents, [c.batch * c.n, this.latentChannels, c.height / f, c.width / f], 'unpacked NCHW: batch × images per prompt, latent channels, height/f, width/f (f the VAE downsampling)');
  }

  /** The call's scheduler, its setTimesteps options and timesteps; a bad step count fails as `steps`. */
  protected planSchedule(o: GenerateOptions, steps: number, options: (s: Scheduler) => SetTimestepsOptions = () => ({})) {
    const scheduler = resolveScheduler(this.scheduler, o.scheduler);
    const s = makeScheduler(scheduler);
    const schedule = options(s);
    setSchedule(s, steps, schedule);
    return { scheduler, schedule, timesteps: [...s.timesteps] };
  }

  /** The initial noise, unpacked NCHW [B, C, h, w]: the given latents or the seeded generator's. */
  protected initialNoise(plan: P, generator: Generator): { data: Float32Array; dims: number[] } {
    const dims = [plan.batch * plan.n, this.latentChannels, plan.height / this.vaeScale, plan.width / this.vaeScale];
    const data = plan.opts.latents ? Float32Array.from(plan.opts.latents.data) : generator.randn(dims.reduce((a, b) => a * b, 1));
    return { data, dims };
  }

  /** The end of a stage: in low-memory mode, its sessions are released (the next stage's are created when they run). */
  private async endStage(): Promise<void> {
    if (this.lowMemory) for (const s of this.sessions) await s.unload();
  }

  /** Runs `fn` after every earlier call has settled. */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  protected async runEncoder(session: Session, feeds: Record<string, HostTensor>, fetch: string): Promise<HostTensor> {
    this.encoderRuns++;
    const r = await session.run(feeds, [fetch]);
    return r.outputs[fetch]!;
  }

  /** One output of a text encoder for a batch of texts, padded and truncated to `maxLength` tokens. */
  protected async encodeText(te: TextEncoderComponent, texts: string[], maxLength: number, fetch: string): Promise<Float32Array> {
    return (await this.encodeTextOutputs(te, texts, maxLength, [fetch]))[fetch]!;
  }

  /** Several outputs of one text encoder run (SDXL: a hidden state and the pooled projection). */
  protected async encodeTextOutputs(te: TextEncoderComponent, texts: string[], maxLength: number, fetches: readonly string[]): Promise<Record<string, Float32Array>> {
    const ids: number[] = [];
    for (const t of texts) ids.push(...te.tokenizer.encode(t, { maxLength, padding: true, truncation: true, onWarning: this.onWarning }).ids);
    this.encoderRuns++;
    const r = await te.session.run({ input_ids: i64([texts.length, maxLength], toInt64(ids)) }, fetches);
    const out: Record<string, Float32Array> = {};
    for (const f of fetches) out[f] = asF32(r.outputs[f]!, te.name);
    return out;
  }

  /**
   * Decodes final latents as diffusers does: latents / scaling_factor + shift (Flux passes the
   * VAE's shift_factor, SD none), then the VAE decoder (tile by tile with `vaeTiling` when the
   * latents exceed a tile, as diffusers' tiled_decode), then [-1, 1] -> [0, 1].
   */
  protected async decodeLatents(vae: VaeDecoderComponent, latents: Float32Array, dims: readonly number[], shift: number, tiling: VaeTiling | null): Promise<FloatTensor> {
    const sf = Math.fround(vae.scalingFactor);
    const sh = Math.fround(shift);
    const z = new Float32Array(latents.length);
    for (let i = 0; i < z.length; i++) z[i] = Math.fround(Math.fround(latents[i]! / sf) + sh);
    const decode = async (t: FloatTensor): Promise<FloatTensor> => {
      const dec = await this.runEncoder(vae.session, { latent_sample: hostF32(t.dims, t.data) }, 'sample');
      return { dims: [...dec.dims], data: asF32(dec, 'vae_decoder') };
    };
    const dec = tiling && needsTiling(dims, tiling) ? await tiledDecode({ dims, data: z }, tiling, decode) : await decode({ dims, data: z });
    return { dims: dec.dims, data: denormalize(dec.data) };
  }

  /** Releases the ONNX sessions (waits for running calls). */
  async release(): Promise<void> {
    await this.exclusive(async () => {
      for (const s of this.sessions) await s.release();
    });
  }
}

/**
 * The name of CLIP's penultimate hidden state (transformers' `hidden_states[-2]`, what SDXL and
 * SD3 condition on): `hidden_states.{n-1}` of the graph's `hidden_states.{0..n}` outputs.
 */
export function penultimateHiddenState(te: TextEncoderComponent): string {
  const idx = te.session.outputNames.map((n) => /^hidden_states\.(\d+)$/.exec(n)).filter((m) => m).map((m) => Number(m![1]));
  if (idx.length < 2) {
    throw new ModelFormatError('COMPONENT_IO', `the ${te.name} graph gives no hidden_states.{i} outputs (it gives ${te.session.outputNames.join(', ')}); convert it again with smash convert`);
  }
  return `hidden_states.${Math.max(...idx) - 1}`;
}

/**
 * Classifier-free guidance at one step: the unconditional and conditional predictions (one
 * batched call, or two with `cfg` 'split', conditional first) combined as diffusers does, u + g·(c − u), in float32.
 */
export async function guidedPrediction(
  cfg: CfgMode | null, guidance: number, x: Float32Array, rows: number, step: StepContext,
  call: (branch: Branch, x: Float32Array, rows: number, step: StepContext) => Promise<Float32Array>,
): Promise<Float32Array> {
  if (!cfg) return call('cond', x, rows, step);
  let u: Float32Array, c: Float32Array;
  if (cfg === 'batched') {
    const out = await call('cfg', concat(x, x), 2 * rows, step);
    u = out.subarray(0, out.length / 2);
    c = out.subarray(out.length / 2);
  } else {
    // the conditional branch first, as diffusers' guiders do: a cache (FasterCache's CFG-cache)
    // may then rebuild the unconditional prediction from it instead of running the model
    c = await call('cond', x, rows, step);
    u = await call('uncond', x, rows, step);
  }
  const g = Math.fround(guidance);
  const pred = new Float32Array(u.length);
  for (let k = 0; k < u.length; k++) pred[k] = Math.fround(u[k]! + Math.fround(g * Math.fround(c[k]! - u[k]!)));
  return pred;
}

/** A tokenizer's model_max_length, or CLIP's 77 where the tokenizer sets none. */
export function tokenLength(te: TextEncoderComponent): number {
  const n = te.tokenizer.modelMaxLength;
  return Number.isFinite(n) ? n : 77;
}
