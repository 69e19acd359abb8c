/**
 * deepcache (DeepCache, arXiv 2312.00858; Pruna's `deepcache` through DeepCacheSDHelper): the
 * UNet's deep features are computed on slow steps and reused in between, where only the shallow
 * path runs — conv_in, the first `branch + 1` resnet/attention pairs of the first down block,
 * the last `branch + 1` pairs of the last up block (with the skip tensors they read), conv_out.
 * What is kept is the feature entering the last up block's pair `n − 1 − branch` (n pairs), as
 * DeepCache's `prv_features`. Only DeepCache's `cache_block_id` 0 is offered (the shallowest
 * block); `branch` is its `cache_layer_id`. Graph: one If holds everything deeper.
 */
import { z } from 'zod';
import { CompatibilityError } from '../../errors.js';
import { deriveBlocks } from '../../ir/blocks.js';
import type { Model } from '../../ir/graph.js';
import { blockPatternsFor } from '../../models/block-patterns.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { ScheduledCache, cutScheduled } from './fora.js';
import { moduleNodes, type CutPart, type Lowering } from './graph.js';
import { DeepCachePolicy, DEEPCACHE_DEFAULTS } from './policies/index.js';

/** UNet features are [batch, channels, height, width]. */
export const UNET_RANK = 4;

/** The deep part of a UNet for DeepCache's branch (cache_layer_id) in the shallowest block. */
export function deepCachePart(model: Model, branch: number): CutPart {
  const blocks = deriveBlocks(model, blockPatternsFor(model));
  const downs = blocks.filter((b) => b.pattern === 'down_blocks.*').map((b) => b.name);
  const ups = blocks.filter((b) => b.pattern === 'up_blocks.*').map((b) => b.name);
  if (!downs.length || !ups.length) throw new CompatibilityError('CACHE_LAYOUT', 'deepcache needs a UNet with down_blocks.* and up_blocks.* modules');
  const d0 = downs[0]!;
  const last = ups[ups.length - 1]!;
  const pairs = (block: string) => blocks.filter((b) => b.pattern === 'down_blocks.*.resnets.*' || b.pattern === 'up_blocks.*.resnets.*').filter((b) => b.name.startsWith(`${block}.resnets.`)).length;
  const n = pairs(last);
  if (branch < 0 || branch > n - 2 || branch > pairs(d0) - 1) {
    throw new CompatibilityError('CACHE_LAYOUT', `deepcache: branch ${branch} is outside 0..${Math.min(n - 2, pairs(d0) - 1)} for this UNet (${n} pairs in ${last})`);
  }
  const modules: string[] = [...downs.slice(1), ...ups.slice(0, -1), 'mid_block', `${d0}.downsamplers`];
  for (let k = branch + 1; k < pairs(d0); k++) modules.push(`${d0}.resnets.${k}`, `${d0}.attentions.${k}`);
  for (let k = 0; k < n - 1 - branch; k++) modules.push(`${last}.resnets.${k}`, `${last}.attentions.${k}`);
  return { part: `deep(${last}.resnets.${n - 1 - branch})`, nodes: moduleNodes(model.graph, modules) };
}

export function deepCacheTransform(model: Model, branch = 0, lowering: Lowering = 'if'): Model {
  return cutScheduled(model, [deepCachePart(model, branch)], UNET_RANK, lowering);
}

export const deepcache = defineAlgorithm({
  name: 'deepcache',
  kind: 'cacher',
  description: 'reuses the UNet\'s deep features between slow steps; the steps between run only the shallow path (DeepCache)',
  schema: z.object({
    interval: z.number().int().min(1).max(5).default(DEEPCACHE_DEFAULTS.interval).describe('one full step every `interval` steps (1 = always compute)'),
    branch: z.number().int().min(0).default(0).describe('how many resnet/attention pairs of the first down and last up block the cached steps run, minus one (0 = the shallowest cut)'),
    uniform: z.boolean().default(DEEPCACHE_DEFAULTS.uniform).describe('uniform schedule, or DeepCache\'s non-uniform one, denser around `center`'),
    center: z.number().int().min(0).optional().describe('non-uniform only: the step around which full steps are densest'),
    pow: z.number().positive().default(DEEPCACHE_DEFAULTS.pow).describe('non-uniform only: starting power of the quadratic sampling'),
  }),
  supports: (t) => (t.denoiser === 'unet' ? supported : unsupported(`deepcache caches UNet features; this pipeline's denoiser is a ${t.denoiser}`)),
  apply(params) {
    const { branch, ...policy } = params;
    return {
      transform: (component, model) => (component.role === 'denoiser' ? deepCacheTransform(model, branch) : model),
      touches: (component, model) => (component.role === 'denoiser' ? [deepCachePart(model, branch).part] : []),
      wrapDenoiser: (d) => new ScheduledCache(d, new DeepCachePolicy(policy), UNET_RANK),
    };
  },
});
