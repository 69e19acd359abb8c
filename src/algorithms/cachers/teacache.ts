/**
 * teacache (TeaCache, arXiv 2411.19108, TeaCache4FLUX): the relative L1 change of block 0's
 * modulated input between consecutive steps, rescaled by a fitted polynomial, is accumulated;
 * while the sum stays below `threshold` every block is skipped and the kept residual of all
 * blocks added to their input; the first and last step always compute. Graph: block 0's norm1
 * runs every step; distance, polynomial, accumulation and decision are computed right after it
 * (adaptive.ts), the blocks sit in one If.
 */
import { z } from 'zod';
import type { Model, Value } from '../../ir/graph.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { AdaptiveCache, SIGNAL } from './adaptive.js';
import { DIT_RANK, ditLayout, teaCacheCut } from './dit.js';
import { cutPart, exposeAs, op, relativeL1Value, scalarF32, scalarInput, stateInput, type Lowering } from './graph.js';
import { TEACACHE_DEFAULTS } from './policies/index.js';
import { declareAlways } from './units.js';

export function teaCacheTransform(model: Model, coefficients: readonly number[] = TEACACHE_DEFAULTS.coefficients, lowering: Lowering = 'if'): Model {
  const g = model.graph;
  const first = ditLayout(model).double[0]!.name;
  const { part, modulated } = teaCacheCut(model);
  const prev = stateInput(g, SIGNAL.signalIn, 'float32', DIT_RANK);
  const distance = relativeL1Value(g, modulated, prev);
  // np.poly1d, Horner, highest power first
  let y: Value = scalarF32(g, '/cache/poly/c0', coefficients[0]!);
  coefficients.slice(1).forEach((c, k) => {
    y = op(g, 'Add', [op(g, 'Mul', [y, distance], `/cache/poly/mul${k}`), scalarF32(g, `/cache/poly/c${k + 1}`, c)], `/cache/poly/add${k}`);
  });
  const acc = op(g, 'Add', [scalarInput(g, SIGNAL.acc, 'float32'), y], '/cache/accumulated');
  // reuse iff accumulated < threshold; otherwise compute and start again from 0
  const below = op(g, 'Less', [acc, scalarInput(g, SIGNAL.threshold, 'float32')], '/cache/below', 'bool');
  const computed = op(g, 'Or', [scalarInput(g, SIGNAL.force), op(g, 'Not', [below], '/cache/not_below', 'bool')], '/cache/decision', 'bool');
  exposeAs(g, op(g, 'Where', [computed, scalarF32(g, '/cache/zero', 0), acc], '/cache/acc_next'), SIGNAL.accOut);
  exposeAs(g, computed, SIGNAL.computed);
  exposeAs(g, distance, SIGNAL.distance);
  exposeAs(g, modulated, SIGNAL.signal);
  cutPart(g, part, computed, DIT_RANK, lowering);
  // block 0's norm1 (the signal) runs on every call
  declareAlways(g, computed, [`${first}.norm1`]);
  return model;
}

export const teacache = defineAlgorithm({
  name: 'teacache',
  kind: 'cacher',
  description: 'skips every transformer block while the accumulated, rescaled change of block 0\'s modulated input stays small (TeaCache, FLUX)',
  schema: z.object({
    threshold: z.number().min(0).default(TEACACHE_DEFAULTS.threshold).describe('accumulated rescaled distance below which the blocks are skipped (0.25 ≈ 1.5×, 0.4 ≈ 1.8×, 0.6 ≈ 2×, 0.8 ≈ 2.25× in the paper; 0 = always compute)'),
    coefficients: z.array(z.number()).min(1).default([...TEACACHE_DEFAULTS.coefficients]).describe('rescale polynomial, highest power first (the published FLUX fit by default)'),
  }),
  supports: (t) => (t.denoiser === 'flux' ? supported : unsupported(`teacache's rescale polynomial is fitted for FLUX; this pipeline's denoiser is a ${t.denoiser}`)),
  apply(params) {
    return {
      transform: (component, model) => (component.role === 'denoiser' ? teaCacheTransform(model, params.coefficients) : model),
      touches: (component, model) => {
        if (component.role !== 'denoiser') return [];
        const { double, single } = ditLayout(model);
        return [...double, ...single].map((b) => b.name);
      },
      wrapDenoiser: (d) => new AdaptiveCache(d, 'teacache', params.threshold, DIT_RANK),
    };
  },
});
