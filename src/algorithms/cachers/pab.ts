/**
 * pab (Pyramid Attention Broadcast, arXiv 2408.12588; diffusers' PyramidAttentionBroadcast):
 * attention outputs are reused across steps inside a timestep range, with a separate interval
 * for self-attention ('spatial': Flux's joint attention, a UNet's `attn1`) and cross-attention
 * (a UNet's `attn2`). Graph: one If per attention module, one condition input per kind
 * (`cache.compute.spatial`, `cache.compute.cross`); a part's kind is read from its name.
 */
import { z } from 'zod';
import type { Model } from '../../ir/graph.js';
import { modulePath } from '../../ir/modules.js';
import type { DenoiseContext, Denoiser, DenoiserFeeds, Prediction, PredictRequest } from '../../pipelines/denoiser.js';
import { CompatibilityError } from '../../errors.js';
import { defineAlgorithm, supported } from '../algorithm.js';
import { DIT_RANK, ditLayout } from './dit.js';
import { absorbExclusiveProducers, boolInput, cutPart, moduleNodes, type CutPart, type Lowering } from './graph.js';
import { PabPolicy, PAB_DEFAULTS, type AttentionKind } from './policies/index.js';
import { declareAlways, outerBlocks } from './units.js';
import { CacheDenoiser, boolFeed, type KeptState } from './wrapper.js';

export const kindOf = (part: string): AttentionKind => (/\.attn2$/.test(part) ? 'cross' : 'spatial');
export const condOf = (kind: AttentionKind): string => `cache.compute.${kind}`;

/** The attention modules: a DiT's blocks' `attn`, a UNet's transformer blocks' `attn1`/`attn2`. */
export function pabParts(model: Model): CutPart[] {
  const g = model.graph;
  const cls = model.metadataProps.get('diffusers.class_name') ?? '';
  if (!cls.startsWith('UNet')) {
    const { double, single } = ditLayout(model);
    return [...double, ...single].map((b) => ({ part: `${b.name}.attn`, nodes: absorbExclusiveProducers(g, moduleNodes(g, [`${b.name}.attn`]), b.name) })).filter((p) => p.nodes.size);
  }
  const paths = new Set<string>();
  for (const n of g.nodes()) {
    const m = /^(.*\.transformer_blocks\.\d+\.attn[12])(\.|$)/.exec(modulePath(n));
    if (m) paths.add(m[1]!);
  }
  if (!paths.size) throw new CompatibilityError('CACHE_LAYOUT', 'pab: no transformer_blocks.*.attn1/attn2 modules in the UNet');
  return [...paths].map((p) => ({ part: p, nodes: moduleNodes(g, [p]) }));
}

export function pabTransform(model: Model, lowering: Lowering = 'if'): Model {
  const g = model.graph;
  const blocks = outerBlocks(model);
  const parts = pabParts(model);
  for (const p of parts) cutPart(g, p, boolInput(g, condOf(kindOf(p.part))), DIT_RANK, lowering);
  // the blocks around the attention modules run on every step
  declareAlways(g, boolInput(g, condOf(kindOf(parts[0]!.part))), blocks);
  return model;
}

export class PabCache extends CacheDenoiser<KeptState> {
  readonly policy: PabPolicy;
  readonly kinds: AttentionKind[];
  constructor(inner: Denoiser, config: ConstructorParameters<typeof PabPolicy>[0]) {
    super(inner, 'pab', DIT_RANK);
    this.policy = new PabPolicy(config);
    this.kinds = (['spatial', 'cross'] as const).filter((k) => this.parts.some((p) => kindOf(p.part) === k));
  }
  protected resetPolicy(): void {
    this.policy.reset();
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const t0 = performance.now();
    const s = this.state(ctx);
    const compute = new Map(this.kinds.map((k) => [k, this.policy.decide(this.stepContext(ctx), k) === 'compute']));
    const extra: DenoiserFeeds = { ...this.keptFeeds(s) };
    for (const [k, c] of compute) extra[condOf(k)] = boolFeed(c);
    const parts = this.parts.filter((p) => compute.get(kindOf(p.part)));
    const outs = parts.flatMap((p) => p.outputs);
    const { r, all } = await this.call(feeds, ctx, request, extra, outs, outs);
    for (const p of parts) p.inputs.forEach((n, i) => s.kept.set(n, all[p.outputs[i]!]!));
    this.recordParts(ctx, [...this.always, ...parts.map((p) => p.part)], this.parts.filter((p) => !parts.includes(p)).map((p) => p.part), performance.now() - t0);
    return r;
  }
}

const range = z.tuple([z.number(), z.number()]);
export const pab = defineAlgorithm({
  name: 'pab',
  kind: 'cacher',
  description: 'reuses attention outputs across steps inside a timestep range, self- and cross-attention at their own intervals (Pyramid Attention Broadcast)',
  schema: z.object({
    spatialAttentionBlockSkipRange: z.number().int().min(1).nullable().default(PAB_DEFAULTS.spatialAttentionBlockSkipRange).describe('self-attention: compute every N steps inside its range (null: always)'),
    spatialAttentionTimestepSkipRange: range.default([...PAB_DEFAULTS.spatialAttentionTimestepSkipRange]).describe('self-attention: the open timestep range where it may be reused'),
    crossAttentionBlockSkipRange: z.number().int().min(1).nullable().default(PAB_DEFAULTS.crossAttentionBlockSkipRange).describe('cross-attention (UNet attn2): compute every N steps inside its range (null: always)'),
    crossAttentionTimestepSkipRange: range.default([...PAB_DEFAULTS.crossAttentionTimestepSkipRange]).describe('cross-attention: the open timestep range where it may be reused'),
  }),
  supports: () => supported,
  apply(params) {
    return {
      transform: (component, model) => (component.role === 'denoiser' ? pabTransform(model) : model),
      touches: (component, model) => (component.role === 'denoiser' ? pabParts(model).map((p) => p.part) : []),
      wrapDenoiser: (d) => new PabCache(d, params),
    };
  },
});
