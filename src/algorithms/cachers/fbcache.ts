/**
 * fbcache (first-block cache; ParaAttention's FBCache, diffusers' FirstBlockCache): block 0 runs
 * every step; when the relative L1 change of its hidden-states residual against the last fully
 * computed step is at most `threshold`, the remaining blocks are skipped and their kept residual
 * added instead. Graph: the distance and decision are computed after block 0 (adaptive.ts); one
 * If holds every later block, its weights inside the branch.
 */
import { z } from 'zod';
import type { Model } from '../../ir/graph.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { AdaptiveCache, SIGNAL } from './adaptive.js';
import { DIT_RANK, ditLayout, firstBlockCut } from './dit.js';
import { cutPart, exposeAs, op, relativeL1Value, scalarInput, stateInput, type Lowering } from './graph.js';
import { FBCACHE_DEFAULTS } from './policies/index.js';
import { declareAlways } from './units.js';

export function fbCacheTransform(model: Model, lowering: Lowering = 'if'): Model {
  const g = model.graph;
  const first = ditLayout(model).double[0]!.name;
  const { part, residual } = firstBlockCut(model);
  const kept = stateInput(g, SIGNAL.signalIn, 'float32', DIT_RANK);
  const distance = relativeL1Value(g, residual, kept);
  // diffusers: compute iff diff > threshold (a NaN diff reuses, as Greater gives false)
  const computed = op(g, 'Or', [scalarInput(g, SIGNAL.force), op(g, 'Greater', [distance, scalarInput(g, SIGNAL.threshold, 'float32')], '/cache/over', 'bool')], '/cache/decision', 'bool');
  exposeAs(g, computed, SIGNAL.computed);
  exposeAs(g, distance, SIGNAL.distance);
  exposeAs(g, residual, SIGNAL.signal);
  cutPart(g, part, computed, DIT_RANK, lowering);
  // block 0 runs on every call: the report names it computed on skipped steps too
  declareAlways(g, computed, [first]);
  return model;
}

export const fbcache = defineAlgorithm({
  name: 'fbcache',
  kind: 'cacher',
  description: 'skips every transformer block after the first while the first block\'s residual barely changes (first-block cache)',
  schema: z.object({
    threshold: z.number().min(0).max(1).default(FBCACHE_DEFAULTS.threshold).describe('relative L1 change of the first block\'s residual below which the other blocks are skipped (0.08 suggested for FLUX; 0 = always compute)'),
  }),
  supports: (t) => (t.denoiser === 'flux' || t.denoiser === 'sd3' ? supported : unsupported(`fbcache caches transformer blocks (Flux, SD3); this pipeline's denoiser is a ${t.denoiser}`)),
  apply(params) {
    return {
      transform: (component, model) => (component.role === 'denoiser' ? fbCacheTransform(model) : model),
      touches: (component, model) => {
        if (component.role !== 'denoiser') return [];
        const { double, single } = ditLayout(model);
        return [...double.slice(1), ...single].map((b) => b.name);
      },
      wrapDenoiser: (d) => new AdaptiveCache(d, 'fbcache', params.threshold, DIT_RANK),
    };
  },
});
