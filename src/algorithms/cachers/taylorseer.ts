/**
 * taylorseer (TaylorSeer, arXiv 2503.06923; diffusers' TaylorSeerCache): FORA's cut points, but
 * on the steps between full ones the cut tensors are forecast by a Taylor expansion over the
 * last full steps (finite differences, policies/taylorseer.ts) instead of reused as they are;
 * `order` 0 is plain reuse. Same graph as fora; the wrapper keeps the factors on the host.
 */
import { z } from 'zod';
import type { DenoiseContext, Denoiser, DenoiserFeeds, Prediction, PredictRequest } from '../../pipelines/denoiser.js';
import type { HostTensor } from '../../runtime/session.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { DIT_RANK, foraParts } from './dit.js';
import { foraTransform } from './fora.js';
import { CACHE_COMPUTE } from './graph.js';
import { TaylorSeerPolicy, TAYLORSEER_DEFAULTS, type TaylorFactors, type TaylorSeerConfig } from './policies/index.js';
import { CacheDenoiser, boolFeed, type KeptState } from './wrapper.js';

interface TaylorState extends KeptState {
  factors: Map<string, { f: TaylorFactors; dims: number[] }>;
}

export class TaylorSeerCache extends CacheDenoiser<TaylorState> {
  readonly policy: TaylorSeerPolicy;
  constructor(inner: Denoiser, config: Partial<TaylorSeerConfig>) {
    super(inner, 'taylorseer', DIT_RANK);
    this.policy = new TaylorSeerPolicy(config);
  }
  protected resetPolicy(): void {
    this.policy.reset();
  }
  protected override initialState(): TaylorState {
    return { kept: new Map(), factors: new Map() };
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const t0 = performance.now();
    const s = this.state(ctx);
    const compute = this.policy.decide(this.stepContext(ctx)) === 'compute';
    const extra: DenoiserFeeds = { ...this.keptFeeds(s), [CACHE_COMPUTE]: boolFeed(compute) };
    if (!compute) {
      for (const [name, { f, dims }] of s.factors) extra[name] = { dtype: 'float32', dims, data: f.predict(ctx.stepIndex) };
    }
    const outs = compute ? this.cutOutputs() : [];
    const { r, all } = await this.call(feeds, ctx, request, extra, outs, []);
    if (compute) {
      for (const p of this.parts) {
        p.inputs.forEach((name, i) => {
          const t = all[p.outputs[i]!] as HostTensor;
          let e = s.factors.get(name);
          if (!e) s.factors.set(name, (e = { f: this.policy.factors(), dims: [...t.dims] }));
          e.dims = [...t.dims];
          e.f.update(ctx.stepIndex, t.data as Float32Array);
        });
      }
    }
    this.record(ctx, compute, performance.now() - t0);
    return r;
  }
}

export const taylorseer = defineAlgorithm({
  name: 'taylorseer',
  kind: 'cacher',
  description: 'forecasts each transformer block\'s attention and feed-forward outputs between full steps by a Taylor expansion (TaylorSeer)',
  schema: z.object({
    interval: z.number().int().min(1).default(TAYLORSEER_DEFAULTS.interval).describe('one full step every `interval` steps once caching has started (1 = always compute)'),
    startStep: z.number().int().min(0).default(TAYLORSEER_DEFAULTS.startStep).describe('steps before this are always computed'),
    stopStep: z.number().int().min(0).nullable().default(TAYLORSEER_DEFAULTS.stopStep).describe('steps from this on are always computed (null: never)'),
    order: z.number().int().min(0).max(4).default(TAYLORSEER_DEFAULTS.order).describe('Taylor order of the forecast (0 = reuse the last full output)'),
  }),
  supports: (t) => (t.denoiser === 'flux' || t.denoiser === 'sd3' ? supported : unsupported(`taylorseer caches transformer blocks (Flux, SD3); this pipeline's denoiser is a ${t.denoiser}`)),
  apply(params) {
    return {
      transform: (component, model) => (component.role === 'denoiser' ? foraTransform(model) : model),
      touches: (component, model) => (component.role === 'denoiser' ? foraParts(model).map((p) => p.part) : []),
      wrapDenoiser: (d) => new TaylorSeerCache(d, params),
    };
  },
});
