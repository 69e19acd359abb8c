/**
 * What the text-to-image pipelines share: option types and checks, the denoiser seam, the
 * per-pipeline lock, scheduler resolution, timings.
 */
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { AbortError, ConfigError, ModelFormatError, SmashError } from '../errors.js';
import { f32 as hostF32, type HostTensor, type Session } from '../runtime/session.js';
import { createScheduler, parseConfigJson, SUPPORTED_SCHEDULERS, type Scheduler } from '../schedulers/index.js';
import type { Tokenizer } from '../tokenizers/index.js';
import { withDefaults, type GenerationDefaults } from './defaults.js';
import { checkFinite, checkFiniteInput } from './finite.js';
import { checkSide } from './limits.js';
import { denormalize, type FloatTensor } from './image.js';

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
  /** initial noise, unpacked NCHW [batch, C, h, w], before any scheduler scaling (diffusers' `latents`) */
  latents?: FloatTensor;
  /** [batch, seq, dim]; replaces `prompt` */
  promptEmbeds?: FloatTensor;
  /** SD: [batch, seq, dim], same shape as promptEmbeds */
  negativePromptEmbeds?: FloatTensor;
  /** Flux: [batch, dim], required with promptEmbeds */
  pooledPromptEmbeds?: FloatTensor;
  signal?: AbortSignal;
  onStep?: (info: StepInfo) => void | Promise<void>;
}

export interface Timings {
  totalMs: number;
  textEncodeMs: number;
  denoiseMs: number;
  decodeMs: number;
  stepsMs: number[];
}

/** Everything that determined the image. */
export interface GenerationSettings {
  pipeline: string;
  prompt: string[] | null;
  negativePrompt: string[] | null;
  steps: number;
  guidanceScale: number;
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
}

export interface GenerateResult {
  /** [N, 3, H, W] in [0, 1] */
  images: FloatTensor;
  /** final latents, unpacked NCHW, before VAE scaling */
  latents: FloatTensor;
  seed: number;
  settings: GenerationSettings;
  timings: Timings;
}

// ---------------------------------------------------------------------------------------------
// The denoiser seam: caching algorithms wrap this object.

/** Which half of classifier-free guidance a call computes; 'cfg' = uncond and cond as one batch (uncond first). */
export type Branch = 'cond' | 'uncond' | 'cfg';

export interface DenoiseContext {
  stepIndex: number;
  numSteps: number;
  timestep: number;
  branch: Branch;
}

/**
 * The denoising model (UNet or transformer) as the loop calls it: once per step and branch.
 * Wrappers (e.g. feature caches) implement the same interface around another denoiser.
 */
export interface Denoiser {
  readonly inputNames: readonly string[];
  predict(feeds: Record<string, HostTensor>, ctx: DenoiseContext): Promise<HostTensor>;
  /** Forgets per-generation state; called at the start of every generate(). */
  reset(): void;
}

/** The plain denoiser: one ONNX session, one output. */
export class SessionDenoiser implements Denoiser {
  /** ONNX runs so far (for diagnostics and tests) */
  runs = 0;
  constructor(readonly session: Session, readonly outputName: string) {}
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  async predict(feeds: Record<string, HostTensor>): Promise<HostTensor> {
    this.runs++;
    const r = await this.session.run(feeds, [this.outputName]);
    return r.outputs[this.outputName]!;
  }
  reset(): void {}
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
export function setSchedule(s: Scheduler, steps: number, opts?: { mu?: number }): void {
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

/**
 * Base of the text-to-image pipelines. `generate()` validates synchronously (bad input fails
 * before any compute), then runs under a promise-chain lock, so concurrent calls on one pipeline
 * run one after the other; all per-call state (scheduler, generator, latents) is local to the call.
 */
export abstract class DiffusionPipeline {
  abstract readonly className: string;
  /** The denoiser the loop calls; replace it with a wrapper to add caching. */
  abstract denoiser: Denoiser;
  /** Image sizes must be multiples of this. */
  abstract readonly sizeMultiple: number;
  abstract readonly defaultSize: { width: number; height: number };
  /** Text-encoder and VAE ONNX runs so far (the denoiser counts its own). */
  encoderRuns = 0;
  /** The folder's generation defaults (smash.json), under the caller's options. */
  generationDefaults: GenerationDefaults = {};
  private tail: Promise<unknown> = Promise.resolve();

  protected constructor(
    readonly source: PipelineSource,
    readonly scheduler: SchedulerSpec,
    protected readonly sessions: Session[],
    protected readonly onWarning: (message: string) => void,
  ) {}

  /** Generates images; see GenerateOptions. */
  generate(opts: GenerateOptions = {}): Promise<GenerateResult> {
    let plan: unknown;
    try {
      checkAbort(opts.signal);
      plan = this.plan(withDefaults(opts, this.generationDefaults));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.exclusive(async () => {
      checkAbort(opts.signal);
      this.denoiser.reset();
      return this.execute(plan);
    });
  }

  /** Runs `fn` after every earlier call has settled. */
  protected exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Validates and resolves options; must not compute. */
  protected abstract plan(opts: GenerateOptions): unknown;
  protected abstract execute(plan: unknown): Promise<GenerateResult>;

  protected async runEncoder(session: Session, feeds: Record<string, HostTensor>, fetch: string): Promise<HostTensor> {
    this.encoderRuns++;
    const r = await session.run(feeds, [fetch]);
    return r.outputs[fetch]!;
  }

  /**
   * Decodes final latents as diffusers does: latents / scaling_factor + shift (Flux passes the
   * VAE's shift_factor, SD none), then the VAE decoder, then [-1, 1] -> [0, 1].
   */
  protected async decodeLatents(vae: VaeDecoderComponent, latents: Float32Array, dims: readonly number[], shift: number): Promise<FloatTensor> {
    const sf = Math.fround(vae.scalingFactor);
    const sh = Math.fround(shift);
    const z = new Float32Array(latents.length);
    for (let i = 0; i < z.length; i++) z[i] = Math.fround(Math.fround(latents[i]! / sf) + sh);
    const dec = await this.runEncoder(vae.session, { latent_sample: hostF32(dims, z) }, 'sample');
    return { dims: [...dec.dims], data: denormalize(asF32(dec, 'vae_decoder')) };
  }

  /** Releases the ONNX sessions (waits for running calls). */
  async release(): Promise<void> {
    await this.exclusive(async () => {
      for (const s of this.sessions) await s.release();
    });
  }
}

/** Runs the per-step callback, then checks for abort. */
export async function afterStep(opts: GenerateOptions, info: StepInfo): Promise<void> {
  checkFinite(`denoising step ${info.stepIndex + 1} of ${info.numSteps} (guidance and the scheduler step)`, info.latents.data);
  if (opts.onStep) await opts.onStep(info);
  checkAbort(opts.signal);
}
