/**
 * The denoiser seam: what the denoising loop calls once per step and guidance branch, and what
 * caching algorithms wrap. A wrapper sees the step (index, timestep, sigma), keeps state per
 * guidance branch for one generation, asks the model for extra outputs (cut tensors, distances)
 * and feeds state inputs; the loop resets it at the start of every generate().
 */
import type { Feed, HostTensor, OrtTensor, Session } from '../runtime/session.js';

/** Which half of classifier-free guidance a call computes; 'cfg' = uncond and cond as one batch (uncond first). */
export type Branch = 'cond' | 'uncond' | 'cfg';

/** How classifier-free guidance runs: one call on a doubled batch (branch 'cfg'), or two calls ('cond', then 'uncond'). */
export type CfgMode = 'batched' | 'split';

/** What fixes the shapes of a generation's denoiser calls; per-generation state is valid only within one. */
export interface GenerationSignature {
  /** images in the call (prompts × images per prompt), before CFG doubles the batch */
  batch: number;
  width: number;
  height: number;
  /** denoising steps (the scheduler's timesteps) */
  steps: number;
  /** how CFG runs; null without CFG */
  cfg: CfgMode | null;
}

export function sameSignature(a: GenerationSignature, b: GenerationSignature): boolean {
  return a.batch === b.batch && a.width === b.width && a.height === b.height && a.steps === b.steps && a.cfg === b.cfg;
}

export interface DenoiseContext {
  stepIndex: number;
  numSteps: number;
  /** the timestep the scheduler gives for this step (before any model-specific scaling) */
  timestep: number;
  /** the scheduler's noise level at this step (sigmas[stepIndex]); undefined for schedulers without sigmas */
  sigma: number | undefined;
  branch: Branch;
  signature: GenerationSignature;
}

/** Feeds of one denoiser call: host tensors, or ORT tensors (prepared constants, kept state) fed as they are. */
export type DenoiserFeeds = Record<string, Feed>;

/** Extra outputs a wrapper asks of the model in one call. */
export interface PredictRequest {
  /** graph outputs to fetch besides the prediction (cut tensors, distances) */
  outputs?: readonly string[];
  /** of `outputs`, those to return as ORT tensors: state for the next call, not copied or widened */
  keep?: readonly string[];
}

export interface Prediction {
  /** the model output (noise or velocity) for the call's batch */
  sample: HostTensor;
  /** the outputs asked for in the request: kept ones as ORT tensors, the others as host tensors */
  outputs: Record<string, Feed>;
}

/**
 * The denoising model (UNet or transformer) as the loop calls it: once per step and branch.
 * Wrappers (feature caches) implement the same interface around another denoiser; install one
 * with `pipeline.denoiser = new MyCache(pipeline.denoiser)`.
 */
export interface Denoiser {
  /** graph inputs (a wrapper's state inputs included) */
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Adapts feeds that stay the same for a whole generation (text embeddings, ids, guidance) once;
   * the loop calls it once per generation and branch, then passes the result with every call.
   */
  prepare(feeds: Record<string, HostTensor>): DenoiserFeeds;
  predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request?: PredictRequest): Promise<Prediction>;
  /** Forgets per-generation state; the loop calls it at the start of every generate(). */
  reset(signature: GenerationSignature): void;
}

/** One denoiser call of a cached generation: which cut parts ran and which were reused. */
export interface CacheStepReport {
  step: number;
  branch: Branch;
  computed: string[];
  reused: string[];
  /** wall time of the call */
  ms: number;
  /** the adaptive cacher's measured change (first-block residual, TeaCache's input distance) */
  distance?: number;
}

/** A denoiser (a cacher's wrapper) that reports its decisions of the current generation. */
export interface ReportingDenoiser extends Denoiser {
  cacheReport(): CacheStepReport[];
}

export function isReporting(d: Denoiser): d is ReportingDenoiser {
  return typeof (d as Partial<ReportingDenoiser>).cacheReport === 'function';
}

/** The plain denoiser: one ONNX session; its first output (or the one named) is the prediction. */
export class SessionDenoiser implements Denoiser {
  /** ONNX runs so far (for diagnostics and tests) */
  runs = 0;
  constructor(readonly session: Session, readonly outputName: string) {}
  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }
  prepare(feeds: Record<string, HostTensor>): DenoiserFeeds {
    return this.session.prepare(feeds);
  }
  async predict(feeds: DenoiserFeeds, _ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    this.runs++;
    const extra = request.outputs ?? [];
    const r = await this.session.run(feeds, [this.outputName, ...extra], { keep: request.keep?.filter((k) => k !== this.outputName) });
    const outputs: Record<string, Feed> = {};
    for (const k of extra) outputs[k] = r.kept[k] ?? r.outputs[k]!;
    return { sample: r.outputs[this.outputName]!, outputs };
  }
  reset(): void {}
}

/**
 * Base of wrappers with per-generation state (caches, as diffusers' cache_context): one state
 * per guidance branch, dropped on reset() and whenever a call's generation signature (batch,
 * size, steps, CFG mode) differs from the last reset's.
 */
export abstract class StatefulDenoiser<S> implements Denoiser {
  /** resets so far (for diagnostics and tests) */
  resets = 0;
  readonly #states = new Map<Branch, S>();
  #signature?: GenerationSignature;

  constructor(readonly inner: Denoiser) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }
  prepare(feeds: Record<string, HostTensor>): DenoiserFeeds {
    return this.inner.prepare(feeds);
  }
  reset(signature: GenerationSignature): void {
    this.#states.clear();
    this.#signature = signature;
    this.resets++;
    this.inner.reset(signature);
  }

  /** The state of `ctx.branch` in this generation, made by `initialState` on first use. */
  protected state(ctx: DenoiseContext): S {
    if (!this.#signature || !sameSignature(this.#signature, ctx.signature)) this.reset(ctx.signature);
    let s = this.#states.get(ctx.branch);
    if (s === undefined) {
      s = this.initialState(ctx);
      this.#states.set(ctx.branch, s);
    }
    return s;
  }

  protected abstract initialState(ctx: DenoiseContext): S;
  abstract predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request?: PredictRequest): Promise<Prediction>;
}

export type { OrtTensor };
