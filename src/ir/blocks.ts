/**
 * Block records: the repeating blocks of a network (`transformer_blocks.3`, `up_blocks.1`) with
 * the values that cross their boundary. Cachers find their cut points here (a block's output
 * to keep, the residual across the first block, the feature entering an up block) rather than by
 * guessing which `Add` ends a block.
 *
 * One derivation, from module paths (modules.ts) alone, serves graphs we built (whose builders
 * store the result in the model's metadata) and graphs exported by PyTorch/Optimum:
 * - a block is a module whose path matches a pattern (fnmatch glob, e.g. `transformer_blocks.*`);
 *   a node belongs to the outermost matching module among its own and its ancestors' paths;
 * - its inputs are the non-constant values produced outside it and read by its nodes (or by
 *   subgraphs of its nodes); its outputs are values produced inside it and read outside it, or
 *   graph outputs. Constants are initializers and what `Constant` nodes compute from nothing
 *   but constants (TorchScript's `/transformer_blocks.0/Constant_3`, folded weight transposes).
 *
 * Order, deterministic and the same on a built graph and its export:
 * - outputs in the order they are computed (graph node order, then output index): Flux's double
 *   block gives [hidden_states, encoder_hidden_states], a UNet down block its res samples in
 *   diffusers' `output_states` order (the last one is what flows on);
 * - inputs: first the block's own (read by no other block of its pattern), each placed by the
 *   output it reaches in the fewest nodes (the residual stream it updates), ties by first read;
 *   then the `shared` ones, read by other blocks of the pattern too (Flux's temb and rotary
 *   cos/sin, a UNet's temb and encoder_hidden_states), by first read, and last those read only
 *   for their shape (`Shape`; a UNet up block's upsample size). So `inputs[k]` and
 *   `outputs[k]` are the same stream across a transformer block, and block i's leading inputs
 *   are block i-1's outputs.
 *
 * Stored as JSON in model metadata under `smash.blocks` ({@link BLOCKS_KEY}), with the patterns,
 * so that a pass that renames values can derive them again ({@link refreshBlocks}).
 */
import { ModelFormatError } from '../errors.js';
import { allNodes, type Graph, type Model, type Node, type Value } from './graph.js';
import { globToRegExp, moduleAncestors, modulePath } from './modules.js';
import { outerReads } from './passes/dead-code-elimination.js';

/** Model metadata key holding the block records (JSON, see {@link BlocksMetadata}). */
export const BLOCKS_KEY = 'smash.blocks';

export interface BlockRecord {
  /** module path of the block: `transformer_blocks.3`, `down_blocks.1.resnets.0`, `mid_block` */
  name: string;
  /** the pattern that found it: `transformer_blocks.*` */
  pattern: string;
  /** position among the blocks of its pattern, in graph order */
  index: number;
  /** value names: the block's own inputs (aligned with `outputs`), then the shared ones */
  inputs: string[];
  /** how many of the last `inputs` are context: read by other blocks of the pattern too, or only for their shape */
  shared: number;
  /** value names, in the order they are computed */
  outputs: string[];
  /** how many nodes the block has */
  nodes: number;
}

/** What `smash.blocks` holds. */
export interface BlocksMetadata {
  version: 1;
  patterns: string[];
  blocks: BlockRecord[];
}

/** Values that are known without running the graph (initializers, Constant-only chains). */
function constantTest(): (v: Value) => boolean {
  const memo = new Map<Value, boolean>();
  const isConst = (v: Value): boolean => {
    if (v.const) return true;
    const p = v.producer;
    if (!p) return false;
    const known = memo.get(v);
    if (known !== undefined) return known;
    memo.set(v, false); // cycles cannot happen in a valid graph; guard anyway
    const r = p.opType === 'Constant' || (p.inputs.length > 0 && p.subgraphs().length === 0 && p.inputs.every((i) => !i || isConst(i)));
    memo.set(v, r);
    return r;
  };
  return isConst;
}

/** Values a node reads, and whether for their data (a `Shape` reads only the shape). */
function reads(n: Node): [Value, boolean][] {
  const out: [Value, boolean][] = [];
  const data = n.opType !== 'Shape' && n.opType !== 'Size';
  for (const v of n.inputs) if (v) out.push([v, data]);
  for (const sg of n.subgraphs()) for (const v of outerReads(sg)) out.push([v, true]);
  return out;
}

interface Group { name: string; pattern: string; nodes: Node[] }

/** Which block of `pattern` each node belongs to (its outermost matching module). */
function groupNodes(graph: Graph, pattern: string): Group[] {
  const re = globToRegExp(pattern);
  const cache = new Map<string, string | undefined>();
  const groups = new Map<string, Group>();
  for (const n of graph.nodes()) {
    const path = modulePath(n);
    let block = cache.get(path);
    if (!cache.has(path)) {
      block = moduleAncestors(path).reverse().find((p) => p !== '' && re.test(p));
      cache.set(path, block);
    }
    if (block === undefined) continue;
    let g = groups.get(block);
    if (!g) groups.set(block, (g = { name: block, pattern, nodes: [] }));
    g.nodes.push(n);
  }
  return [...groups.values()];
}

/** Nodes of `members` between `from` and each output, counted along uses (BFS). */
function distances(from: Value, members: Set<Node>, outputs: Value[]): number[] {
  const dist = new Map<Value, number>([[from, 0]]);
  const queue: Value[] = [from];
  while (queue.length) {
    const v = queue.shift()!;
    const d = dist.get(v)!;
    for (const u of v.uses) {
      if (!members.has(u.node)) continue;
      for (const o of u.node.outputs) if (!dist.has(o)) { dist.set(o, d + 1); queue.push(o); }
    }
  }
  return outputs.map((o) => dist.get(o) ?? Infinity);
}

/**
 * Block records of a graph for the given patterns (fnmatch globs over module paths), in pattern
 * order, then graph order. Works on any graph whose nodes have module paths, built or imported.
 */
export function deriveBlocks(source: Model | Graph, patterns: readonly string[]): BlockRecord[] {
  const graph = 'graph' in source ? source.graph : source;
  const isConst = constantTest();
  const order = new Map<Node, number>();
  let i = 0;
  for (const n of graph.nodes()) order.set(n, i++);
  const graphOutputs = new Set(graph.outputs);
  // reader blocks of every value, per pattern, to tell shared inputs from a block's own
  const records: BlockRecord[] = [];
  for (const pattern of patterns) {
    const groups = groupNodes(graph, pattern);
    const readers = new Map<Value, Set<string>>();
    const bounds = groups.map((g) => {
      const members = new Set(g.nodes);
      const inputs: Value[] = [];
      const seenIn = new Set<Value>();
      const dataIn = new Set<Value>();
      const outputs: Value[] = [];
      for (const n of g.nodes) {
        for (const [v, data] of reads(n)) {
          if ((v.producer && members.has(v.producer)) || isConst(v)) continue;
          if (!seenIn.has(v)) { seenIn.add(v); inputs.push(v); }
          if (!data || dataIn.has(v)) continue;
          dataIn.add(v);
          let r = readers.get(v);
          if (!r) readers.set(v, (r = new Set()));
          r.add(g.name);
        }
        for (const o of n.outputs) {
          if (isConst(o)) continue;
          const escapes = graphOutputs.has(o) || [...o.uses].some((u) => !members.has(topLevel(u.node, graph)));
          if (escapes) outputs.push(o);
        }
      }
      return { g, members, inputs, dataIn, outputs };
    });
    bounds.forEach(({ g, members, inputs, dataIn, outputs }, index) => {
      const own = inputs.filter((v) => dataIn.has(v) && readers.get(v)!.size === 1);
      const shared = inputs.filter((v) => dataIn.has(v) && readers.get(v)!.size > 1);
      // read only for their shape (a UNet up block's upsample size, from the next skip): last
      shared.push(...inputs.filter((v) => !dataIn.has(v)));
      // each own input goes with the output it reaches soonest: the stream it is the residual of
      const key = new Map(own.map((v, k) => {
        const d = distances(v, members, outputs);
        const best = d.reduce((bi, x, j) => (x < d[bi]! ? j : bi), 0);
        return [v, d[best] === Infinity ? outputs.length : best + k / (own.length + 1)];
      }));
      own.sort((a, b) => key.get(a)! - key.get(b)!);
      records.push({
        name: g.name,
        pattern,
        index,
        inputs: [...own, ...shared].map((v) => v.name),
        shared: shared.length,
        outputs: outputs.map((v) => v.name),
        nodes: g.nodes.length,
      });
    });
  }
  return records;
}

/** The top-level node of `graph` that holds `n` (itself, or the If/Loop whose body holds it). */
function topLevel(n: Node, graph: Graph): Node {
  let cur = n;
  while (cur.graph && cur.graph !== graph && cur.graph.parentNode) cur = cur.graph.parentNode;
  return cur;
}

/** Derives the records for `patterns` and stores them in the model's metadata. */
export function recordBlocks(model: Model, patterns: readonly string[]): BlockRecord[] {
  const blocks = deriveBlocks(model, patterns);
  const meta: BlocksMetadata = { version: 1, patterns: [...patterns], blocks };
  model.metadataProps.set(BLOCKS_KEY, JSON.stringify(meta));
  return blocks;
}

function parseMetadata(model: Model): BlocksMetadata | undefined {
  const text = model.metadataProps.get(BLOCKS_KEY);
  if (text === undefined) return undefined;
  const bad = (why: string) => new ModelFormatError('BLOCKS_METADATA', `model metadata '${BLOCKS_KEY}' ${why}`);
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  const m = meta as Partial<BlocksMetadata>;
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (m?.version !== 1 || !strings(m.patterns) || !Array.isArray(m.blocks)) throw bad('is not a version 1 block record ({version, patterns, blocks})');
  for (const b of m.blocks) {
    const r = b as Partial<BlockRecord>;
    if (typeof r?.name !== 'string' || typeof r.pattern !== 'string' || !Number.isInteger(r.index) || !strings(r.inputs) || !strings(r.outputs)
      || !Number.isInteger(r.shared) || r.shared! < 0 || r.shared! > r.inputs!.length || !Number.isInteger(r.nodes)) {
      throw bad(`has a malformed block record: ${JSON.stringify(b).slice(0, 200)}`);
    }
  }
  return m as BlocksMetadata;
}

/**
 * The block records stored in the model's metadata (undefined when it has none). Fails with
 * `BLOCKS_STALE`, naming the value, when a recorded value no longer exists in the graph (a pass
 * renamed it without calling {@link refreshBlocks}).
 */
export function readBlocks(model: Model): BlockRecord[] | undefined {
  const meta = parseMetadata(model);
  if (!meta) return undefined;
  const names = new Set<string>();
  for (const v of model.graph.inputs) names.add(v.name);
  for (const n of allNodes(model.graph)) for (const o of n.outputs) names.add(o.name);
  for (const b of meta.blocks) {
    for (const v of [...b.inputs, ...b.outputs]) {
      if (!names.has(v)) throw new ModelFormatError('BLOCKS_STALE', `block '${b.name}' in model metadata '${BLOCKS_KEY}' names value '${v}', which the graph no longer has`);
    }
  }
  return meta.blocks;
}

/** The patterns the stored records were derived with (undefined when there are none). */
export function recordedBlockPatterns(model: Model): string[] | undefined {
  return parseMetadata(model)?.patterns;
}

/** Derives the stored records again with their own patterns, after a pass changed the graph. */
export function refreshBlocks(model: Model): BlockRecord[] | undefined {
  const patterns = recordedBlockPatterns(model);
  return patterns ? recordBlocks(model, patterns) : undefined;
}
