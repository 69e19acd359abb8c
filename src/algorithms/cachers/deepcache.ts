/**
 * deepcache (DeepCache, arXiv 2312.00858; Pruna's `deepcache` through DeepCacheSDHelper): the
 * UNet's deep features are computed on slow steps and reused in between, where only the shallow
 * path runs. `branch` is DeepCacheSDHelper's `cache_branch_id`: a (block, layer) pair, blocks
 * counted from the shallowest (down_blocks.0 with the last up block), layers of that block's up
 * half counted from its end; with the 3 up layers of SD 1.x/2.x and SDXL, `block = branch // 3`
 * and `layer = branch % 3`, as `set_params` maps it (other layouts number their pairs the same
 * way, block-major). On a cached step (DeepCacheSDHelper.is_skip_step) the blocks shallower than
 * `block` run in full; of down block `block`, the resnet/attention pairs before `layer`; of its up
 * block, the last `layer + 1` pairs and the upsampler; the rest — deeper blocks, mid_block, the
 * down block's other pairs and downsampler, the up block's first pairs — is skipped, and what
 * is kept is the feature entering the first up pair that runs (DeepCache's `prv_features`).
 * Branch 0 is the shallowest cut (conv_in and the last up pair only); the last branch skips
 * mid_block only. Graph: one If holds everything skipped.
 */
import { z } from 'zod';
import { CompatibilityError, ConfigError } from '../../errors.js';
import { deriveBlocks } from '../../ir/blocks.js';
import type { Graph, Model, Node, Value } from '../../ir/graph.js';
import { moduleAncestors, modulePath } from '../../ir/modules.js';
import { outerReads } from '../../ir/passes/dead-code-elimination.js';
import { blockPatternsFor } from '../../models/block-patterns.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { ScheduledCache } from './fora.js';
import { CACHE_COMPUTE, boolInput, cutPart, moduleNodes, type CutPart, type Lowering } from './graph.js';
import { DeepCachePolicy, DEEPCACHE_DEFAULTS } from './policies/index.js';
import { declareAlways, packModules } from './units.js';

/** UNet features are [batch, channels, height, width]. */
export const UNET_RANK = 4;

/** A UNet's blocks as DeepCache counts them: `downs[b]` pairs with `ups[ups.length - 1 - b]`. */
export interface UNetLayout {
  downs: string[];
  ups: string[];
  /** resnet/attention pairs of each block, by block name */
  pairs: Map<string, number>;
  /** the (block, layer) pair of every branch id, in order */
  branches: { block: number; layer: number }[];
}

export function unetLayout(model: Model): UNetLayout {
  const blocks = deriveBlocks(model, blockPatternsFor(model));
  const named = (pattern: string) => blocks.filter((b) => b.pattern === pattern).map((b) => b.name);
  const downs = named('down_blocks.*');
  const ups = named('up_blocks.*');
  if (!downs.length || !ups.length || !named('mid_block').length) {
    throw new CompatibilityError('CACHE_LAYOUT', 'deepcache needs a UNet with down_blocks.*, mid_block and up_blocks.* modules');
  }
  if (downs.length !== ups.length) throw new CompatibilityError('CACHE_LAYOUT', `deepcache: the UNet has ${downs.length} down blocks but ${ups.length} up blocks`);
  const resnets = [...named('down_blocks.*.resnets.*'), ...named('up_blocks.*.resnets.*')];
  const pairs = new Map([...downs, ...ups].map((b) => [b, resnets.filter((r) => r.startsWith(`${b}.resnets.`)).length]));
  const branches: UNetLayout['branches'] = [];
  downs.forEach((_, block) => {
    for (let layer = 0; layer < pairs.get(ups[ups.length - 1 - block]!)!; layer++) branches.push({ block, layer });
  });
  return { downs, ups, pairs, branches };
}

/**
 * The modules a cached step skips (`deep`) and runs (`shallow`) for `branch`, at block
 * granularity: a block the cut splits is listed by its pairs (and samplers).
 */
export function deepCacheModules(model: Model, branch: number, layout = unetLayout(model)): { deep: string[]; shallow: string[]; block: number; layer: number } {
  const { downs, ups, pairs, branches } = layout;
  if (!Number.isInteger(branch) || branch < 0 || branch >= branches.length) {
    const per = [...new Set(ups.map((u) => pairs.get(u)))].join('/');
    throw new ConfigError('CACHE_CONFIG', `deepcache: branch ${branch} is outside 0..${branches.length - 1} for this UNet (${downs.length} blocks × ${per} layers; 0 = the shallowest cut, ${branches.length - 1} skips mid_block only)`, 'branch');
  }
  const { block, layer } = branches[branch]!;
  const present = new Set<string>();
  for (const n of model.graph.nodes()) for (const a of moduleAncestors(modulePath(n))) present.add(a);
  const has = (m: string) => present.has(m);
  const deep: string[] = [];
  const shallow: string[] = [];
  // a block the cut splits is listed by its parts; one that falls on one side, by its name
  const split = (name: string, parts: [string, boolean][]) => {
    const present = parts.filter(([m]) => has(m));
    if (present.every(([, d]) => d)) deep.push(name);
    else if (present.every(([, d]) => !d)) shallow.push(name);
    else for (const [m, d] of present) (d ? deep : shallow).push(m);
  };
  const pairModules = (b: string, k: number) => [`${b}.resnets.${k}`, `${b}.attentions.${k}`];
  downs.forEach((d, i) => {
    if (i < block) shallow.push(d);
    else if (i > block) deep.push(d);
    // down layers: the pairs, then the downsampler (is_skip_step: skipped iff layer >= cache_layer_id)
    else {
      const n = pairs.get(d)!;
      const parts: [string, boolean][] = [];
      for (let k = 0; k < n; k++) for (const m of pairModules(d, k)) parts.push([m, k >= layer]);
      parts.push([`${d}.downsamplers`, true]);
      split(d, parts);
    }
  });
  deep.push('mid_block');
  ups.forEach((u, j) => {
    const b = ups.length - 1 - j;
    if (b < block) shallow.push(u);
    else if (b > block) deep.push(u);
    // up layers count from the block's end (skipped iff layer > cache_layer_id); the upsampler runs with them
    else {
      const n = pairs.get(u)!;
      const parts: [string, boolean][] = [];
      for (let k = 0; k < n; k++) for (const m of pairModules(u, k)) parts.push([m, n - 1 - k > layer]);
      parts.push([`${u}.upsamplers`, false]);
      split(u, parts);
    }
  });
  return { deep, shallow, block, layer };
}

/**
 * Takes out of `nodes` what does not depend on the latent `sample` and is read outside them too:
 * PyTorch's exporter computes shared work once, in the first module that needs it (the time
 * embedding's SiLU under `down_blocks.0.resnets.0`, the text length under its `attn2`), so the
 * deep part of an exported UNet would otherwise hold values the shallow path reads. They depend
 * only on the timestep and the text, so running them on every step is exact (and cheap).
 */
function hoistShared(g: Graph, nodes: Set<Node>): Set<Node> {
  const order = g.nodeList();
  const reads = (n: Node): Value[] => [...n.inputs.filter((v): v is Value => !!v), ...n.subgraphs().flatMap((sg) => [...outerReads(sg)])];
  const sample = g.inputs.find((v) => v.name === 'sample') ?? g.inputs[0];
  const dependent = new Set<Node>();
  // a shape read is not a dependence: the timestep is expanded to the batch of `sample`
  for (const n of order) {
    if (n.opType === 'Shape' || n.opType === 'Size') continue;
    if (reads(n).some((v) => v === sample || (v.producer && dependent.has(v.producer)))) dependent.add(n);
  }
  const outputs = new Set(g.outputs);
  const hoisted = new Set<Node>();
  for (const n of [...order].reverse()) {
    if (!nodes.has(n) || dependent.has(n)) continue;
    const outside = n.outputs.some((o) => outputs.has(o) || [...o.uses].some((u) => {
      let t: Node | undefined = u.node;
      while (t && t.graph !== g) t = t.graph?.parentNode;
      return !t || !nodes.has(t) || hoisted.has(t);
    }));
    if (outside) hoisted.add(n);
  }
  for (const n of hoisted) nodes.delete(n);
  return nodes;
}

/** The deep part of a UNet for DeepCache's `branch` (cache_branch_id), named by its modules. */
export function deepCachePart(model: Model, branch: number, deep = deepCacheModules(model, branch).deep): CutPart {
  return { part: packModules(deep), nodes: hoistShared(model.graph, moduleNodes(model.graph, deep)) };
}

export function deepCacheTransform(model: Model, branch = 0, lowering: Lowering = 'if'): Model {
  const { deep, shallow } = deepCacheModules(model, branch);
  const g = model.graph;
  const cond = boolInput(g, CACHE_COMPUTE);
  cutPart(g, deepCachePart(model, branch, deep), cond, UNET_RANK, lowering);
  declareAlways(g, cond, shallow);
  return model;
}

export const deepcache = defineAlgorithm({
  name: 'deepcache',
  kind: 'cacher',
  description: 'reuses the UNet\'s deep features between slow steps; the steps between run only the shallow path (DeepCache)',
  schema: z.object({
    interval: z.number().int().min(1).max(5).default(DEEPCACHE_DEFAULTS.interval).describe('one full step every `interval` steps (1 = always compute)'),
    branch: z.number().int().min(0).default(0).describe('DeepCache\'s cache_branch_id: how deep the cut is (block = branch // 3, layer = branch % 3 on SD and SDXL UNets; 0 = the shallowest, the last = everything but mid_block runs on cached steps)'),
    uniform: z.boolean().default(DEEPCACHE_DEFAULTS.uniform).describe('uniform schedule, or DeepCache\'s non-uniform one, denser around `center`'),
    center: z.number().int().min(0).optional().describe('non-uniform only: the step around which full steps are densest'),
    pow: z.number().positive().default(DEEPCACHE_DEFAULTS.pow).describe('non-uniform only: starting power of the quadratic sampling'),
  }),
  supports: (t) => (t.denoiser === 'unet' ? supported : unsupported(`deepcache caches UNet features; this pipeline's denoiser is a ${t.denoiser}`)),
  apply(params) {
    const { branch, ...policy } = params;
    return {
      transform: (component, model) => (component.role === 'denoiser' ? deepCacheTransform(model, branch) : model),
      touches: (component, model) => (component.role === 'denoiser' ? deepCacheModules(model, branch).deep : []),
      wrapDenoiser: (d) => new ScheduledCache(d, new DeepCachePolicy(policy), UNET_RANK),
    };
  },
});
