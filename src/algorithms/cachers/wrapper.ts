/**
 * The pipeline half of every cacher: a stateful denoiser (pipelines/denoiser.ts) that feeds the
 * kept values of a transformed graph's cut parts back in (graph.ts names them), keeps what a
 * computed step returns, one state per guidance branch, and records its decisions for
 * `GenerateResult.cache`. It reads the parts from the graph's input and output names, so a
 * saved bundle is re-armed without the transformation being run again.
 */
import { CompatibilityError } from '../../errors.js';
import {
  StatefulDenoiser, type CacheStepReport, type DenoiseContext, type Denoiser, type DenoiserFeeds, type GenerationSignature,
  type Prediction, type PredictRequest, type ReportingDenoiser,
} from '../../pipelines/denoiser.js';
import type { Feed, HostTensor } from '../../runtime/session.js';
import type { CacherName, GuidanceBranch, StepContext } from './policies/index.js';
import { CACHE_IN, CACHE_OUT } from './graph.js';
import { alwaysModules, unpackModules } from './units.js';

export interface CachePartIO {
  part: string;
  /** `cache_in/<part>/<i>` in index order */
  inputs: string[];
  /** `cache_out/<part>/<i>`, aligned with `inputs` */
  outputs: string[];
}

/** The cut parts a transformed denoiser graph declares, in graph input order. */
export function cacheParts(d: Denoiser): CachePartIO[] {
  const parts = new Map<string, CachePartIO>();
  for (const name of d.inputNames) {
    if (!name.startsWith(CACHE_IN)) continue;
    const rest = name.slice(CACHE_IN.length);
    const cut = rest.lastIndexOf('/');
    const part = rest.slice(0, cut);
    let p = parts.get(part);
    if (!p) parts.set(part, (p = { part, inputs: [], outputs: [] }));
    p.inputs[Number(rest.slice(cut + 1))] = name;
  }
  const outs = new Set(d.outputNames);
  for (const p of parts.values()) {
    p.outputs = p.inputs.map((n) => `${CACHE_OUT}${n.slice(CACHE_IN.length)}`);
    for (const o of p.outputs) if (!outs.has(o)) throw new CompatibilityError('CACHE_GRAPH', `the denoiser graph has input '${CACHE_IN}${p.part}/…' but no output '${o}'`);
  }
  return [...parts.values()];
}

export const boolFeed = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
export const f32Scalar = (x: number): HostTensor => ({ dtype: 'float32', dims: [], data: Float32Array.of(x) });

/** What every cacher keeps per branch: the values fed back, by input name. */
export interface KeptState {
  kept: Map<string, Feed>;
}

export abstract class CacheDenoiser<S extends KeptState> extends StatefulDenoiser<S> implements ReportingDenoiser {
  readonly parts: CachePartIO[];
  /** the modules that run on every call (the graph's `cache.always/…` output), reported as computed */
  readonly always: string[];
  #report: CacheStepReport[] = [];

  /**
   * `rank`: the rank of every kept value (3 for transformer streams, 4 for UNet features);
   * `partsOptional`: a cacher that may act without cut parts (FasterCache's CFG-cache on a UNet)
   */
  constructor(inner: Denoiser, readonly cacher: CacherName, readonly rank: number, opts: { partsOptional?: boolean } = {}) {
    super(inner);
    this.parts = cacheParts(inner);
    this.always = alwaysModules(inner.outputNames);
    if (!this.parts.length && !opts.partsOptional) {
      throw new CompatibilityError('CACHE_GRAPH', `${cacher}: the denoiser graph has no cache inputs (${CACHE_IN}…): it was not transformed by a cacher`);
    }
  }

  /** graph inputs the loop feeds: the cacher's own are left out */
  override get inputNames(): readonly string[] {
    return this.inner.inputNames.filter((n) => !n.startsWith(CACHE_IN) && !n.startsWith('cache.'));
  }

  override reset(signature: GenerationSignature): void {
    super.reset(signature);
    this.#report = [];
    this.resetPolicy();
  }

  cacheReport(): CacheStepReport[] {
    return this.#report.map((r) => ({ ...r, computed: [...r.computed], reused: [...r.reused] }));
  }

  protected abstract resetPolicy(): void;

  protected initialState(): S {
    return { kept: new Map() } as unknown as S;
  }

  /** The policy's step context for a loop call. */
  protected stepContext(ctx: DenoiseContext): StepContext {
    return { step: ctx.stepIndex, numSteps: ctx.numSteps, timestep: ctx.timestep, branch: ctx.branch as GuidanceBranch };
  }

  /** A stand-in for a value not kept yet (the first step computes, so its branch never reads it). */
  protected placeholder(): HostTensor {
    return { dtype: 'float32', dims: Array(this.rank).fill(1), data: new Float32Array(1) };
  }

  /** Feeds of every cut input: kept values, else placeholders. */
  protected keptFeeds(s: S): DenoiserFeeds {
    const f: DenoiserFeeds = {};
    for (const p of this.parts) for (const n of p.inputs) f[n] = s.kept.get(n) ?? this.placeholder();
    return f;
  }

  /** Every cut output name. */
  protected cutOutputs(): string[] {
    return this.parts.flatMap((p) => p.outputs);
  }

  /**
   * One call of the inner denoiser with extra feeds and outputs; outputs in `keep` (besides the
   * caller's) come back as ORT tensors. Returns the prediction with the caller's outputs only.
   */
  protected async call(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest, extra: DenoiserFeeds, outputs: string[], keep: string[]): Promise<{ r: Prediction; all: Record<string, Feed> }> {
    const r = await this.inner.predict({ ...feeds, ...extra }, ctx, {
      outputs: [...outputs, ...(request.outputs ?? [])],
      keep: [...keep, ...(request.keep ?? [])],
    });
    const mine: Record<string, Feed> = {};
    for (const k of request.outputs ?? []) mine[k] = r.outputs[k]!;
    return { r: { sample: r.sample, outputs: mine }, all: r.outputs };
  }

  /** Keeps the cut outputs of a computed call as the values to feed back. */
  protected keepCuts(s: S, all: Record<string, Feed>): void {
    for (const p of this.parts) p.inputs.forEach((n, i) => s.kept.set(n, all[p.outputs[i]!]!));
  }

  /** Records a call that computed (or reused) every part: module by module, with those that always run. */
  protected record(ctx: DenoiseContext, computed: boolean, ms: number, distance?: number): void {
    const names = this.parts.flatMap((p) => unpackModules(p.part));
    this.recordParts(ctx, computed ? [...this.always, ...names] : [...this.always], computed ? [] : names, ms, distance);
  }

  protected recordParts(ctx: DenoiseContext, computed: string[], reused: string[], ms: number, distance?: number): void {
    this.#report.push({ step: ctx.stepIndex, branch: ctx.branch, computed, reused, ms, ...(distance !== undefined ? { distance } : {}) });
  }
}
