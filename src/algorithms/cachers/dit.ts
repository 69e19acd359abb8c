/**
 * Where the cut points are in a diffusion transformer (Flux, SD3), from the block records
 * (ir/blocks.ts) and module paths alone, so built graphs and exports are cut alike:
 * - FORA/TaylorSeer: per block, the attention and feed-forward outputs before the adaLN gate
 *   (a Flux single block: its fused attention + MLP, through `proj_out`); modulation, gates and
 *   residual adds stay outside and run with the current timestep;
 * - first-block cache: every block after the first, as one part, residual against block 0's output;
 * - TeaCache: every block but block 0's `norm1` (whose output is the signal), residual against
 *   the blocks' input.
 */
import { CompatibilityError } from '../../errors.js';
import { deriveBlocks, type BlockRecord } from '../../ir/blocks.js';
import type { Graph, Model, Node, Value } from '../../ir/graph.js';
import { modulePath } from '../../ir/modules.js';
import { blockPatternsFor } from '../../models/block-patterns.js';
import { absorbExclusiveProducers, moduleNodes, op, type CutPart } from './graph.js';
import { packModules } from './units.js';

/** Transformer streams are [batch, tokens, dim]. */
export const DIT_RANK = 3;

export interface DitLayout {
  double: BlockRecord[];
  single: BlockRecord[];
}

export function ditLayout(model: Model): DitLayout {
  const blocks = deriveBlocks(model, blockPatternsFor(model));
  const double = blocks.filter((b) => b.pattern === 'transformer_blocks.*');
  const single = blocks.filter((b) => b.pattern === 'single_transformer_blocks.*');
  if (!double.length) throw new CompatibilityError('CACHE_LAYOUT', 'the denoiser graph has no transformer_blocks.* modules to cache');
  return { double, single };
}

function value(g: Graph, name: string): Value {
  const v = g.values().get(name);
  if (!v) throw new CompatibilityError('CACHE_LAYOUT', `the denoiser graph has no value '${name}'`);
  return v;
}

/** FORA's cut parts: each block's attention and feed-forward (see the module comment). */
export function foraParts(model: Model): CutPart[] {
  const g = model.graph;
  const { double, single } = ditLayout(model);
  const parts: CutPart[] = [];
  const add = (part: string, modules: string[], block: string) => {
    const nodes = moduleNodes(g, modules);
    if (nodes.size) parts.push({ part, nodes: absorbExclusiveProducers(g, nodes, block) });
  };
  for (const b of double) for (const m of ['attn', 'ff', 'ff_context']) add(`${b.name}.${m}`, [`${b.name}.${m}`], b.name);
  for (const b of single) add(`${b.name}.proj_out`, ['attn', 'proj_mlp', 'act_mlp', 'proj_out'].map((m) => `${b.name}.${m}`), b.name);
  if (!parts.length) throw new CompatibilityError('CACHE_LAYOUT', 'no attention or feed-forward modules found in the transformer blocks');
  return parts;
}

/**
 * The stream base of what leaves the blocks after `from`: Flux's single blocks carry
 * concat(context, hidden) (the context is dropped after them), SD3's last block the hidden
 * states only.
 */
function streamBase(g: Graph, layout: DitLayout, hidden: Value, context: Value): (leaving: Value, i: number) => Value {
  let concat: Value | undefined;
  return (_v, i) => {
    if (layout.single.length) {
      if (i > 0) throw new CompatibilityError('CACHE_LAYOUT', 'more than one value leaves the single transformer blocks');
      return (concat ??= op(g, 'Concat', [context, hidden], '/cache/stream_base', 'float32', { axis: 1 }));
    }
    return [hidden, context][i] ?? (() => { throw new CompatibilityError('CACHE_LAYOUT', `value ${i} leaving the blocks has no stream base`); })();
  };
}

/**
 * Shape reads of the streams leaving the last double block (Flux slices the image tokens off by
 * the context's length) are pointed at the same stream before the cut part: same shape, and the
 * skipped blocks then have one result only.
 */
function readShapesBefore(g: Graph, layout: DitLayout, streams: (Value | undefined)[]): void {
  const last = layout.double[layout.double.length - 1]!;
  last.outputs.forEach((name, j) => {
    const v = value(g, name);
    const to = streams[j];
    if (!to) return;
    for (const u of v.useList()) if (u.node.opType === 'Shape' && !modulePathIn(u.node, layout)) u.node.setInput(u.index, to);
  });
}

function modulePathIn(n: Node, layout: DitLayout): boolean {
  const p = modulePath(n);
  return [...layout.double, ...layout.single].some((b) => p === b.name || p.startsWith(`${b.name}.`));
}

/** First-block cache: the part after block 0, and block 0's hidden-states residual. */
export function firstBlockCut(model: Model): { part: CutPart; residual: Value } {
  const g = model.graph;
  const layout = ditLayout(model);
  const [first, ...rest] = layout.double;
  const names = [...rest, ...layout.single].map((b) => b.name);
  if (!names.length) throw new CompatibilityError('CACHE_LAYOUT', 'first-block caching needs more than one transformer block');
  const [x0, ctx0] = first!.outputs.map((n) => value(g, n));
  const xIn = value(g, first!.inputs[0]!);
  readShapesBefore(g, layout, [x0, ctx0]);
  const residual = op(g, 'Sub', [x0!, xIn], 'cache.first_block_residual');
  return { part: { part: packModules(names), nodes: moduleNodes(g, names), residual: streamBase(g, layout, x0!, ctx0 ?? x0!) }, residual };
}

/** TeaCache: every block except block 0's norm1, and norm1's modulated input (the signal). */
export function teaCacheCut(model: Model): { part: CutPart; modulated: Value } {
  const g = model.graph;
  const layout = ditLayout(model);
  const first = layout.double[0]!;
  const blocks = [...layout.double, ...layout.single].map((b) => b.name);
  const norm1 = moduleNodes(g, [`${first.name}.norm1`]);
  if (!norm1.size) throw new CompatibilityError('CACHE_LAYOUT', `no ${first.name}.norm1 module: TeaCache needs block 0's modulated input`);
  const nodes = new Set<Node>([...moduleNodes(g, blocks)].filter((n) => !norm1.has(n)));
  const [xIn, ctxIn] = first.inputs.map((n) => value(g, n));
  readShapesBefore(g, layout, [xIn, ctxIn]);
  // norm1's result that depends on the hidden states (its others, shift/scale/gate, on temb only)
  const fromX = new Set<Value>([xIn!]);
  let modulated: Value | undefined;
  for (const n of g.nodes()) {
    if (!norm1.has(n) || !n.inputs.some((v) => v && fromX.has(v))) continue;
    for (const o of n.outputs) {
      fromX.add(o);
      if ([...o.uses].some((u) => !norm1.has(u.node))) modulated = o;
    }
  }
  if (!modulated) throw new CompatibilityError('CACHE_LAYOUT', `cannot find ${first.name}.norm1's modulated output`);
  return { part: { part: packModules(blocks), nodes, residual: streamBase(g, layout, xIn!, ctxIn!) }, modulated };
}

