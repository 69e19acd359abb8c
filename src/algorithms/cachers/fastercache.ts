/**
 * fastercache (FasterCache, arXiv 2410.19355; diffusers' FasterCacheConfig / apply_faster_cache,
 * Pruna's `fastercache`), two caches under one policy (policies/fastercache.ts):
 * - attention reuse: every self-attention module of a diffusion transformer (diffusers' spatial
 *   identifiers `^transformer_blocks.*attn`, `^single_transformer_blocks.*attn`: Flux's and SD3's
 *   joint attention, SD3.5's `attn2`) goes behind an If whose else-branch extrapolates from the
 *   module's last two outputs, t1 + (t1 − t2)·w, in the graph. The wrapper keeps both per module
 *   and guidance branch (conditional rows only, as diffusers caches them).
 * - the CFG-cache: on steps the policy skips the unconditional half, the wrapper runs the
 *   conditional rows alone and rebuilds the unconditional prediction from them and the
 *   frequency-split difference of the last step that ran both (fastercache-frequency.ts).
 * A UNet gets the CFG-cache only: diffusers' identifiers are anchored at the model root, and no
 * UNet attention path starts with `transformer_blocks`. Flux (guidance-distilled, no CFG) gets
 * attention reuse only. With CFG as two calls (`cfgMode: 'split'`) the loop calls the
 * conditional branch first, so a skipped unconditional call needs no model run at all.
 *
 * Graph names (besides graph.ts's): `cache_prev/<part>/<i>` the output before the last
 * (t2; `cache_in/<part>/<i>` is t1), `cache.attention_weight` the scalar w.
 */
import { z } from 'zod';
import type { Graph, Model, Value } from '../../ir/graph.js';
import { Node, Value as IrValue } from '../../ir/graph.js';
import { CompatibilityError } from '../../errors.js';
import type { DenoiseContext, Denoiser, DenoiserFeeds, GenerationSignature, Prediction, PredictRequest } from '../../pipelines/denoiser.js';
import { isOrtTensor, type Feed, type HostTensor } from '../../runtime/session.js';
import type { TypedArray } from '../../core/dtype.js';
import { defineAlgorithm, supported, unsupported, type SmashTarget } from '../algorithm.js';
import { DIT_RANK, ditLayout } from './dit.js';
import { CACHE_COMPUTE, CACHE_IN, absorbExclusiveProducers, boolInput, cutPart, moduleNodes, scalarInput, stateInput, type CutPart, type Lowering } from './graph.js';
import { FasterCachePolicy, FASTERCACHE_DEFAULTS, type Decision, type FasterCacheConfig, type TimestepRange } from './policies/index.js';
import { CacheDenoiser, boolFeed, f32Scalar, type KeptState } from './wrapper.js';
import { UnconditionalEstimate } from './fastercache-frequency.js';

export const CACHE_PREV = 'cache_prev/';
export const ATTENTION_WEIGHT = 'cache.attention_weight';
/** the report's name for the unconditional half of classifier-free guidance (the CFG-cache's part) */
export const UNCONDITIONAL = 'unconditional';

/** The self-attention modules FasterCache extrapolates: none in a UNet (see the module comment). */
export function fasterCacheParts(model: Model): CutPart[] {
  if ((model.metadataProps.get('diffusers.class_name') ?? '').startsWith('UNet')) return [];
  const g = model.graph;
  const { double, single } = ditLayout(model);
  const parts: CutPart[] = [];
  for (const b of [...double, ...single]) {
    for (const m of ['attn', 'attn2']) {
      const nodes = moduleNodes(g, [`${b.name}.${m}`]);
      if (nodes.size) parts.push({ part: `${b.name}.${m}`, nodes: absorbExclusiveProducers(g, nodes, b.name) });
    }
  }
  return parts;
}

/** `opType(inputs)` inserted into `g` before `before`. */
function insertOp(g: Graph, opType: string, inputs: Value[], name: string, dtype: Value['dtype'], before: Node, attrs: Record<string, number> = {}): Value {
  const n = new Node(opType, name);
  n.inputs.push(...inputs);
  const out = new IrValue(name, dtype);
  n.outputs.push(out);
  for (const [k, v] of Object.entries(attrs)) n.attributes.set(k, { type: 'int', value: v });
  g.insert(n, before);
  return out;
}

/**
 * Puts each attention module behind an If under `cache.compute` (or, with 'where', computes it
 * and overwrites its outputs: the reference), its reused value being t1 + (t1 − t2)·w.
 */
export function fasterCacheTransform(model: Model, lowering: Lowering = 'if'): Model {
  const parts = fasterCacheParts(model);
  if (!parts.length) return model;
  const g = model.graph;
  const cond = boolInput(g, CACHE_COMPUTE);
  const weight = scalarInput(g, ATTENTION_WEIGHT, 'float32');
  for (const p of parts) {
    cutPart(g, p, cond, DIT_RANK, lowering);
    const kept = g.inputs.filter((v) => v.name.startsWith(`${CACHE_IN}${p.part}/`));
    for (const t1 of kept) {
      const suffix = t1.name.slice(CACHE_IN.length);
      const t2 = stateInput(g, `${CACHE_PREV}${suffix}`, t1.dtype, DIT_RANK);
      // the readers of the kept value: the else-branch's Identity ('if') or the Where ('where')
      for (const u of t1.useList()) {
        const sg = u.node.graph!;
        const base = `/cache/${suffix}/extrapolate`;
        const w = t1.dtype === 'float32' ? weight : insertOp(sg, 'Cast', [weight], `${base}/weight`, t1.dtype, u.node, { to: onnxType(t1.dtype) });
        const diff = insertOp(sg, 'Sub', [t1, t2], `${base}/Sub`, t1.dtype, u.node);
        const step = insertOp(sg, 'Mul', [diff, w], `${base}/Mul`, t1.dtype, u.node);
        u.node.setInput(u.index, insertOp(sg, 'Add', [t1, step], `${base}/Add`, t1.dtype, u.node));
      }
    }
  }
  return model;
}

function onnxType(dtype: Value['dtype']): number {
  const codes: Partial<Record<NonNullable<Value['dtype']>, number>> = { float32: 1, float16: 10, bfloat16: 16, float64: 11 };
  const c = dtype ? codes[dtype] : undefined;
  if (c === undefined) throw new CompatibilityError('CACHE_DTYPE', `fastercache: attention outputs of dtype ${dtype} cannot be extrapolated`);
  return c;
}

/** Rows [from, to) of a batch-leading tensor, as a host view (no copy). */
export function rows(t: Feed, from: number, to: number): HostTensor {
  const dims = [...t.dims];
  const data = t.data as TypedArray;
  const per = data.length / dims[0]!;
  return { dtype: (isOrtTensor(t) ? t.type : t.dtype) as HostTensor['dtype'], dims: [to - from, ...dims.slice(1)], data: data.subarray(from * per, to * per) };
}

interface AttentionState extends KeptState {
  /** per kept input (`cache_in/…`): the last two outputs [t2, t1], conditional rows only */
  history: Map<string, [Feed, Feed]>;
}

/** The policy's settings from the algorithm's hyperparameters and the pipeline. */
export function fasterCacheConfig(params: FasterCacheParams, target: Pick<SmashTarget, 'denoiser'>): FasterCacheConfig {
  const flux = target.denoiser === 'flux';
  return {
    spatialAttentionBlockSkipRange: params.interval,
    spatialAttentionTimestepSkipRange: (params.spatialAttentionTimestepSkipRange ?? (flux ? [-1, 961] : FASTERCACHE_DEFAULTS.spatialAttentionTimestepSkipRange)) as TimestepRange,
    lowFrequencyWeightUpdateTimestepRange: params.lowFrequencyWeightUpdateTimestepRange as TimestepRange,
    highFrequencyWeightUpdateTimestepRange: params.highFrequencyWeightUpdateTimestepRange as TimestepRange,
    alphaLowFrequency: params.alphaLowFrequency,
    alphaHighFrequency: params.alphaHighFrequency,
    unconditionalBatchSkipRange: params.unconditionalBatchSkipRange,
    unconditionalBatchTimestepSkipRange: params.unconditionalBatchTimestepSkipRange as TimestepRange,
    attentionWeight: params.attentionWeight,
    isGuidanceDistilled: params.isGuidanceDistilled ?? flux,
  };
}

/**
 * The stateful denoiser: attention history per guidance branch, the CFG-cache per generation.
 * A generation without CFG is treated as guidance-distilled (there is no unconditional half).
 */
export class FasterCacheDenoiser extends CacheDenoiser<AttentionState> {
  policy: FasterCachePolicy;
  readonly #estimate = new UnconditionalEstimate();
  /** split CFG: the step's CFG-cache decision and conditional prediction, from its conditional call */
  #split?: { step: number; uncond: Decision; cond: HostTensor };
  /** conditional halves of the generation's constant (prepared) feeds */
  #halves = new WeakMap<object, HostTensor>();

  constructor(inner: Denoiser, readonly config: FasterCacheConfig) {
    super(inner, 'fastercache', DIT_RANK, { partsOptional: true });
    this.policy = new FasterCachePolicy(config);
  }

  override get inputNames(): readonly string[] {
    return super.inputNames.filter((n) => !n.startsWith(CACHE_PREV));
  }

  override reset(signature: GenerationSignature): void {
    super.reset(signature);
    this.policy = new FasterCachePolicy({ ...this.config, isGuidanceDistilled: this.config.isGuidanceDistilled || signature.cfg === null });
  }

  protected resetPolicy(): void {
    this.policy.reset();
    this.#estimate.reset();
    this.#split = undefined;
    this.#halves = new WeakMap();
  }

  protected override initialState(): AttentionState {
    return { kept: new Map(), history: new Map() };
  }

  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const t0 = performance.now();
    const s = this.state(ctx);
    if (ctx.branch === 'uncond') return this.unconditional(feeds, ctx, request, s, t0);
    const { branch: _b, ...step } = this.stepContext(ctx);
    const uncond = this.policy.decideUnconditional(step);
    const skip = uncond === 'reuse';
    const attention = this.attention(ctx, skip);
    const batched = ctx.branch === 'cfg';
    const B = ctx.signature.batch;
    const extra = this.attentionFeeds(s, attention);
    const { r, all } = skip && batched
      ? await this.conditionalOnly(feeds, ctx, request, extra, B)
      : await this.call(feeds, ctx, request, extra, this.cutOutputs(), this.cutOutputs());
    this.remember(s, all, batched && !skip);
    let sample = r.sample;
    if (batched && skip) {
      const cond = sample.data as Float32Array;
      const uncondEstimate = this.#estimate.rebuild(cond, sample.dims, this.policy.frequencyWeights(ctx.timestep));
      const both = new Float32Array(2 * cond.length);
      both.set(uncondEstimate);
      both.set(cond, cond.length);
      sample = { dtype: 'float32', dims: [2 * sample.dims[0]!, ...sample.dims.slice(1)], data: both };
    } else if (batched && !this.policy.config.isGuidanceDistilled) {
      const half = rows(sample, 0, sample.dims[0]! / 2);
      const cond = rows(sample, sample.dims[0]! / 2, sample.dims[0]!);
      this.#estimate.store(half.data as Float32Array, cond.data as Float32Array, cond.dims);
    }
    if (ctx.branch === 'cond' && ctx.signature.cfg === 'split') this.#split = { step: ctx.stepIndex, uncond, cond: r.sample };
    const u = batched ? [UNCONDITIONAL] : [];
    this.report(ctx, attention, skip ? [] : u, skip ? u : [], t0);
    return { sample, outputs: r.outputs };
  }

  /**
   * A batched call whose unconditional half is skipped: the conditional rows of every batched
   * feed run alone. (The tests' reference overrides it to run both halves and keep the
   * conditional rows.)
   */
  protected conditionalOnly(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest, extra: DenoiserFeeds, B: number): ReturnType<CacheDenoiser<AttentionState>['call']> {
    return this.call(this.conditionalHalf(feeds, B), ctx, request, extra, this.cutOutputs(), this.cutOutputs());
  }

  /** The unconditional call of split CFG: rebuilt from this step's conditional call, or run. */
  private async unconditional(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest, s: AttentionState, t0: number): Promise<Prediction> {
    const c = this.#split;
    if (!c || c.step !== ctx.stepIndex) {
      throw new CompatibilityError('CACHE_BRANCH_ORDER', `fastercache: the unconditional call of step ${ctx.stepIndex} came before its conditional call; the CFG-cache rebuilds it from the conditional prediction`);
    }
    this.#split = undefined;
    const cond = c.cond.data as Float32Array;
    if (c.uncond === 'reuse') {
      const sample: HostTensor = { dtype: 'float32', dims: c.cond.dims, data: this.#estimate.rebuild(cond, c.cond.dims, this.policy.frequencyWeights(ctx.timestep)) };
      this.recordParts(ctx, [], [UNCONDITIONAL], performance.now() - t0);
      return { sample, outputs: {} };
    }
    const attention = this.attention(ctx, false);
    const { r, all } = await this.call(feeds, ctx, request, this.attentionFeeds(s, attention), this.cutOutputs(), this.cutOutputs());
    this.remember(s, all, false);
    if (!this.policy.config.isGuidanceDistilled) this.#estimate.store(r.sample.data as Float32Array, cond, r.sample.dims);
    this.report(ctx, attention, [UNCONDITIONAL], [], t0);
    return r;
  }

  private attention(ctx: DenoiseContext, unconditionalSkipped: boolean): Decision {
    return this.parts.length ? this.policy.decideAttention(this.stepContext(ctx), unconditionalSkipped) : 'compute';
  }

  private report(ctx: DenoiseContext, attention: Decision, computed: string[], reused: string[], t0: number): void {
    const names = this.parts.map((p) => p.part);
    const [c, r] = attention === 'compute' ? [names, []] : [[], names];
    this.recordParts(ctx, [...computed, ...c], [...reused, ...r], performance.now() - t0);
  }

  /** `cache.compute`, the weight, and t1/t2 of every module (placeholders until kept). */
  private attentionFeeds(s: AttentionState, attention: Decision): DenoiserFeeds {
    if (!this.parts.length) return {};
    const f: DenoiserFeeds = { [CACHE_COMPUTE]: boolFeed(attention === 'compute'), [ATTENTION_WEIGHT]: f32Scalar(this.policy.config.attentionWeight) };
    for (const p of this.parts) {
      for (const n of p.inputs) {
        const h = s.history.get(n);
        f[n] = h?.[1] ?? this.placeholder();
        f[`${CACHE_PREV}${n.slice(CACHE_IN.length)}`] = h?.[0] ?? this.placeholder();
      }
    }
    return f;
  }

  /**
   * Keeps each module's output of this call (computed or extrapolated) as the newest of its two;
   * of a call that ran both halves, the conditional rows only (what a skipped step continues).
   */
  private remember(s: AttentionState, all: Record<string, Feed>, bothHalves: boolean): void {
    const condOnly = bothHalves && !this.policy.config.isGuidanceDistilled;
    for (const p of this.parts) {
      p.inputs.forEach((n, i) => {
        let v = all[p.outputs[i]!]!;
        if (condOnly) v = rows(v, v.dims[0]! / 2, v.dims[0]!);
        const h = s.history.get(n);
        s.history.set(n, h ? [h[1], v] : [v, v]);
      });
    }
  }

  /** The conditional rows of every batched feed ([2B, …] → the last B rows). */
  private conditionalHalf(feeds: DenoiserFeeds, B: number): DenoiserFeeds {
    const out: DenoiserFeeds = {};
    for (const [k, f] of Object.entries(feeds)) {
      if (f.dims[0] !== 2 * B) {
        out[k] = f;
        continue;
      }
      // prepared feeds are the same objects all generation long: slice them once
      const constant = isOrtTensor(f);
      let h = constant ? this.#halves.get(f) : undefined;
      if (!h) {
        h = rows(f, B, 2 * B);
        if (constant) this.#halves.set(f, h);
      }
      out[k] = h;
    }
    return out;
  }
}

const range = z.tuple([z.number(), z.number()]);
const schema = z.object({
  interval: z.number().int().min(1).max(5).default(FASTERCACHE_DEFAULTS.spatialAttentionBlockSkipRange)
    .describe('self-attention is computed every `interval` steps inside its timestep range and extrapolated from its last two outputs in between (Pruna\'s interval, diffusers\' spatial_attention_block_skip_range; 1 = always compute)'),
  spatialAttentionTimestepSkipRange: range.nullable().default(null).describe('the open timestep range where attention may be extrapolated (null: (-1, 961) on Flux, as Pruna; (-1, 681) elsewhere)'),
  attentionWeight: z.number().default(FASTERCACHE_DEFAULTS.attentionWeight).describe('w of the extrapolation t1 + (t1 − t2)·w'),
  unconditionalBatchSkipRange: z.number().int().min(1).default(FASTERCACHE_DEFAULTS.unconditionalBatchSkipRange).describe('CFG-cache: the unconditional half runs every N steps inside its range and is rebuilt from the conditional one in between (1 = always run)'),
  unconditionalBatchTimestepSkipRange: range.default([...FASTERCACHE_DEFAULTS.unconditionalBatchTimestepSkipRange]).describe('CFG-cache: the open timestep range where the unconditional half may be skipped'),
  lowFrequencyWeightUpdateTimestepRange: range.default([...FASTERCACHE_DEFAULTS.lowFrequencyWeightUpdateTimestepRange]).describe('timesteps where the low-frequency difference is multiplied by alphaLowFrequency on a skipped step'),
  highFrequencyWeightUpdateTimestepRange: range.default([...FASTERCACHE_DEFAULTS.highFrequencyWeightUpdateTimestepRange]).describe('timesteps where the high-frequency difference is multiplied by alphaHighFrequency on a skipped step'),
  alphaLowFrequency: z.number().default(FASTERCACHE_DEFAULTS.alphaLowFrequency).describe('weight of the low-frequency difference'),
  alphaHighFrequency: z.number().default(FASTERCACHE_DEFAULTS.alphaHighFrequency).describe('weight of the high-frequency difference'),
  isGuidanceDistilled: z.boolean().nullable().default(null).describe('no unconditional half to skip: attention may be extrapolated on any step (null: true on Flux)'),
});
export type FasterCacheParams = z.infer<typeof schema>;

export const fastercache = defineAlgorithm({
  name: 'fastercache',
  kind: 'cacher',
  description: 'extrapolates self-attention outputs between full steps and, with CFG, rebuilds the unconditional prediction from the conditional one and a stored low/high-frequency difference (FasterCache)',
  schema,
  supports: (t) => (t.className === 'LatentConsistencyModelPipeline'
    ? unsupported('an LCM UNet runs without CFG and has no transformer attention FasterCache extrapolates: nothing to cache')
    : supported),
  apply(params, target) {
    const config = fasterCacheConfig(params, target);
    return {
      transform: (component, model) => (component.role === 'denoiser' ? fasterCacheTransform(model) : model),
      touches: (component, model) => (component.role === 'denoiser' ? fasterCacheParts(model).map((p) => p.part) : []),
      wrapDenoiser: (d) => new FasterCacheDenoiser(d, config),
    };
  },
});
