/**
 * fora (FORA, arXiv 2407.01425; Pruna's `fora`): each transformer block's attention and
 * feed-forward outputs, before the adaLN gate, are computed on the first `startStep` steps and
 * then every `interval` steps, and reused in between; modulation, gates and residual adds run
 * every step with the current timestep. Graph: one `If` per part, one shared condition input.
 */
import { z } from 'zod';
import type { Model } from '../../ir/graph.js';
import type { DenoiseContext, Denoiser, DenoiserFeeds, Prediction, PredictRequest } from '../../pipelines/denoiser.js';
import { defineAlgorithm, supported, unsupported, type SmashTarget } from '../algorithm.js';
import { DIT_RANK, foraParts } from './dit.js';
import { CACHE_COMPUTE, boolInput, cutPart, type CutPart, type Lowering } from './graph.js';
import { ForaPolicy, FORA_DEFAULTS, type Decision } from './policies/index.js';
import { declareAlways, outerBlocks } from './units.js';
import { CacheDenoiser, boolFeed, type KeptState } from './wrapper.js';

/** Puts every part behind its own If (or Where), all under the `cache.compute` input. */
export function cutScheduled(model: Model, parts: CutPart[], rank: number, lowering: Lowering): Model {
  const g = model.graph;
  const cond = boolInput(g, CACHE_COMPUTE);
  for (const p of parts) cutPart(g, p, cond, rank, lowering);
  return model;
}

export function foraTransform(model: Model, lowering: Lowering = 'if'): Model {
  const blocks = outerBlocks(model);
  cutScheduled(model, foraParts(model), DIT_RANK, lowering);
  // every block runs its modulation, gates and residual adds on reused steps too
  declareAlways(model.graph, boolInput(model.graph, CACHE_COMPUTE), blocks);
  return model;
}

/**
 * A cacher whose decision is known before the call (a fixed schedule): feeds `cache.compute`
 * and the kept values, keeps what a computed call returns.
 */
export class ScheduledCache extends CacheDenoiser<KeptState> {
  constructor(inner: Denoiser, readonly policy: { name: ForaPolicy['name'] | 'taylorseer' | 'deepcache'; reset(): void; decide(ctx: ReturnType<CacheDenoiser<KeptState>['stepContext']>): Decision }, rank: number) {
    super(inner, policy.name, rank);
  }
  protected resetPolicy(): void {
    this.policy.reset();
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const t0 = performance.now();
    const s = this.state(ctx);
    const compute = this.policy.decide(this.stepContext(ctx)) === 'compute';
    const outs = compute ? this.cutOutputs() : [];
    const { r, all } = await this.call(feeds, ctx, request, { ...this.keptFeeds(s), [CACHE_COMPUTE]: boolFeed(compute) }, outs, outs);
    if (compute) this.keepCuts(s, all);
    this.record(ctx, compute, performance.now() - t0);
    return r;
  }
}

const dits = (t: SmashTarget) => (t.denoiser === 'flux' || t.denoiser === 'sd3' ? supported : unsupported(`fora caches transformer blocks (Flux, SD3); this pipeline's denoiser is a ${t.denoiser}`));

export const fora = defineAlgorithm({
  name: 'fora',
  kind: 'cacher',
  description: 'reuses each transformer block\'s attention and feed-forward outputs between full steps (FORA)',
  schema: z.object({
    interval: z.number().int().min(1).max(10).default(FORA_DEFAULTS.interval).describe('one full step every `interval` steps once caching has started (1 = always compute)'),
    startStep: z.number().int().min(0).default(FORA_DEFAULTS.startStep).describe('steps computed in full before caching starts'),
  }),
  supports: dits,
  apply(params) {
    return {
      transform: (component, model) => (component.role === 'denoiser' ? foraTransform(model) : model),
      touches: (component, model) => (component.role === 'denoiser' ? foraParts(model).map((p) => p.part) : []),
      wrapDenoiser: (d) => new ScheduledCache(d, new ForaPolicy(params), DIT_RANK),
    };
  },
});
