/**
 * The graph half of every cacher: a named part of the denoiser (a set of nodes, convex) is made
 * skippable and its results kept. Naming contract with the wrapper (wrapper.ts), so that a saved
 * bundle's graph is re-armed from its input and output names alone:
 *
 *   cache_in/<part>/<i>    graph input: the kept value (or residual) fed back on reused steps
 *   cache_out/<part>/<i>   graph output: the value (or residual) to keep from a computed step
 *
 * Two lowerings of the same cut:
 * - 'if': the part goes behind an ONNX `If` (region.ts); its weights move into the branch, so
 *   nothing is held twice and a reused step does not run it;
 * - 'where': the part always runs and `Where(cond, computed, kept)` overwrites what leaves it —
 *   the reference the tests compare the 'if' lowering with (the surgery skips exactly that).
 *
 * With `residual`, what is kept is `value − base` (base: a value outside the part with the same
 * shape, e.g. the hidden states entering the part) and a reused step gives `base + kept`, as
 * first-block caching and TeaCache do.
 */
import { InMemoryTensor } from '../../core/tensor.js';
import { CompatibilityError } from '../../errors.js';
import type { Dim } from '../../ir/graph.js';
import { Graph, Node, Value } from '../../ir/graph.js';
import { modulePath } from '../../ir/modules.js';
import { sortGraph } from '../../ir/passes/topological-sort.js';
import { convexHull, gateRegion } from '../../ir/region.js';
import { inferDtypes } from '../../ir/type-inference.js';

export type Lowering = 'if' | 'where';

export const CACHE_IN = 'cache_in/';
export const CACHE_OUT = 'cache_out/';
/** the scalar bool input of scheduled cachers: compute the cut parts at this step */
export const CACHE_COMPUTE = 'cache.compute';

export interface CutPart {
  /** reported name, and the middle of the I/O names: `transformer_blocks.3.attn` */
  part: string;
  nodes: Iterable<Node>;
  /** keep residuals: the base of each value leaving the part (a value outside it) */
  residual?: (leaving: Value, index: number) => Value;
}

export interface Cut {
  part: string;
  /** values leaving the part (now the If's outputs, or the Where's) */
  outputs: Value[];
  /** the If node ('if' lowering) */
  ifNode?: Node;
  movedInitializers: string[];
}

let uid = 0;
const fresh = (g: Graph, base: string) => {
  const taken = g.values();
  let name = base;
  while (taken.has(name)) name = `${base}_${++uid}`;
  return name;
};

function node(g: Graph, op: string, inputs: Value[], out: Value, attrs: Record<string, number> = {}, before?: Node): Node {
  const n = new Node(op, `/cache/${op}_${++uid}`);
  n.inputs.push(...inputs);
  n.outputs.push(out);
  for (const [k, v] of Object.entries(attrs)) n.attributes.set(k, { type: 'int', value: v });
  g.insert(n, before);
  return n;
}

/** A new float graph input of `rank` dims (symbolic), named by the contract above. */
export function stateInput(g: Graph, name: string, dtype: Value['dtype'], rank: number): Value {
  if (g.values().has(name)) throw new CompatibilityError('CACHE_NAME_TAKEN', `graph '${g.name}' already has '${name}': it is cached already`);
  const v = new Value(name, dtype, Array.from({ length: rank }, (_, k): Dim => `${name}_${k}`));
  g.inputs.push(v);
  return v;
}

/** The top-level node of `g` holding `n`. */
function topLevel(g: Graph, n: Node): Node | undefined {
  let m: Node | undefined = n;
  while (m && m.graph !== g) m = m.graph?.parentNode;
  return m;
}

/**
 * Adds to `nodes` the nodes of module `prefix` (of any module without it) whose every result is
 * read only by the set (a block's norm feeding only its attention; the rotary embedding feeding
 * only skipped blocks): work a reused step would otherwise do for nothing.
 */
export function absorbExclusiveProducers(g: Graph, nodes: Set<Node>, prefix?: string): Set<Node> {
  const outs = new Set(g.outputs);
  const inBlock = (n: Node) => { if (prefix === undefined) return true; const p = modulePath(n); return p === prefix || p.startsWith(`${prefix}.`); };
  for (let changed = true; changed;) {
    changed = false;
    for (const n of g.nodeList().reverse()) {
      if (nodes.has(n) || !inBlock(n) || n.outputs.length === 0) continue;
      const only = n.outputs.every((o) => !outs.has(o) && o.uses.size > 0 && [...o.uses].every((u) => nodes.has(topLevel(g, u.node)!)));
      if (only) { nodes.add(n); changed = true; }
    }
  }
  return nodes;
}

/** Values produced by `nodes` and read outside them (or graph outputs), in graph order. */
function leavingValues(g: Graph, nodes: Set<Node>): Value[] {
  const outs = new Set(g.outputs);
  const out: Value[] = [];
  for (const n of g.nodes()) {
    if (!nodes.has(n)) continue;
    for (const o of n.outputs) if (outs.has(o) || [...o.uses].some((u) => !nodes.has(topLevel(g, u.node)!))) out.push(o);
  }
  return out;
}

/**
 * Makes `part` skippable under `cond` (a bool scalar value of `g`), with kept values of `rank`
 * dims (every value leaving the part must have that rank). See the module comment.
 */
export function cutPart(g: Graph, spec: CutPart, cond: Value, rank: number, lowering: Lowering): Cut {
  // what only the part reads goes with it (in the 'if' lowering a reused step skips it too)
  const nodes = absorbExclusiveProducers(g, convexHull(g, spec.nodes));
  if (!nodes.size) throw new CompatibilityError('CACHE_EMPTY', `cache part '${spec.part}' has no nodes`);
  const leaving = leavingValues(g, nodes);
  if (leaving.some((v) => !v.dtype)) inferDtypes(g);
  const bases = spec.residual ? leaving.map((v, i) => spec.residual!(v, i)) : [];
  const inName = (i: number) => `${CACHE_IN}${spec.part}/${i}`;
  const outName = (i: number) => `${CACHE_OUT}${spec.part}/${i}`;
  const kept = leaving.map((v, i) => stateInput(g, inName(i), v.dtype, rank));

  if (lowering === 'where') {
    leaving.forEach((v, i) => {
      const outside = v.useList().filter((u) => !nodes.has(topLevel(g, u.node)!));
      let reused = kept[i]!;
      let keep = v;
      if (spec.residual) {
        reused = new Value(fresh(g, `${v.name}/cache_reused`), v.dtype);
        node(g, 'Add', [bases[i]!, kept[i]!], reused);
        keep = new Value(fresh(g, `${v.name}/cache_residual`), v.dtype);
        node(g, 'Sub', [v, bases[i]!], keep);
      }
      const w = new Value(fresh(g, `${v.name}/cache_where`), v.dtype);
      node(g, 'Where', [cond, v, reused], w);
      for (const u of outside) u.node.setInput(u.index, w);
      g.outputs.forEach((o, k) => { if (o === v) g.outputs[k] = w; });
      const exposed = new Value(outName(i), v.dtype);
      if (spec.residual) node(g, 'Where', [cond, keep, kept[i]!], exposed);
      else node(g, 'Identity', [w], exposed);
      g.outputs.push(exposed);
    });
    sortGraph(g);
    return { part: spec.part, outputs: leaving, movedInitializers: [] };
  }

  const region = gateRegion(g, nodes, {
    name: `/cache/${spec.part}/If`,
    cond,
    replacement: (_v, i) => kept[i]!,
    ...(spec.residual ? {} : { expose: (_v: Value, i: number) => outName(i) }),
  });
  if (spec.residual) {
    const { ifNode, then, else: els } = region;
    const n = region.escaping.length;
    for (let i = 0; i < n; i++) {
      const v = region.escaping[i]!;
      // then: the residual of the computed value; else: base + the kept residual, and that residual
      const r = new Value(`${v.name}/residual`, v.dtype);
      node(then, 'Sub', [v, bases[i]!], r);
      then.outputs.push(r);
      const id = els.outputs[i]!.producer!;
      const sum = new Value(`${els.outputs[i]!.name}/sum`, v.dtype);
      node(els, 'Add', [bases[i]!, kept[i]!], sum, {}, id);
      els.outputs[i] = sum;
      els.remove(id, true);
      const same = new Value(`${outName(i)}/else`, v.dtype);
      node(els, 'Identity', [kept[i]!], same);
      els.outputs.push(same);
      const o = new Value(outName(i), v.dtype);
      o.producer = ifNode;
      o.outputIndex = ifNode.outputs.length;
      ifNode.outputs.push(o);
      g.outputs.push(o);
    }
    // the bases are computed outside the If: make sure they come first
    sortGraph(g);
  }
  return { part: spec.part, outputs: region.outputs, ifNode: region.ifNode, movedInitializers: region.movedInitializers };
}

/** The scalar graph input `name` (created once, shared by every cut part). */
export function scalarInput(g: Graph, name: string, dtype: Value['dtype'] = 'bool'): Value {
  const have = g.inputs.find((v) => v.name === name);
  if (have) return have;
  const v = new Value(name, dtype, []);
  g.inputs.push(v);
  return v;
}

export const boolInput = (g: Graph, name: string): Value => scalarInput(g, name, 'bool');

/** Exposes `v` as graph output `name` (through an Identity, so the name is exactly that). */
export function exposeAs(g: Graph, v: Value, name: string): Value {
  const out = op(g, 'Identity', [v], name, v.dtype);
  if (out.name !== name) throw new CompatibilityError('CACHE_NAME_TAKEN', `graph '${g.name}' already has '${name}': it is cached already`);
  g.outputs.push(out);
  return out;
}

/** mean|a − b| / mean|b| over every element, as a float scalar (the adaptive cachers' distance). */
export function relativeL1Value(g: Graph, a: Value, b: Value): Value {
  const mean = (x: Value, n: string) => op(g, 'ReduceMean', [op(g, 'Abs', [x], `${n}/abs`)], n, 'float32', { keepdims: 0 });
  return op(g, 'Div', [mean(op(g, 'Sub', [a, b], '/cache/distance/sub'), '/cache/distance/num'), mean(b, '/cache/distance/den')], '/cache/distance');
}

/** A new node `op(inputs)` in `g` with a fresh output name; returns the output. */
export function op(g: Graph, opType: string, inputs: Value[], name: string, dtype: Value['dtype'] = 'float32', attrs: Record<string, number> = {}): Value {
  const out = new Value(fresh(g, name), dtype);
  node(g, opType, inputs, out, attrs);
  return out;
}

/** A float32 scalar constant initializer. */
export function scalarF32(g: Graph, name: string, x: number): Value {
  return g.addInitializer(fresh(g, name), new InMemoryTensor('float32', [], Float32Array.of(x)));
}

/** Every node of `g` whose module path is `path` or inside it. */
export function moduleNodes(g: Graph, paths: readonly string[]): Set<Node> {
  const set = new Set<Node>();
  for (const n of g.nodes()) {
    const p = modulePath(n);
    if (paths.some((m) => p === m || p.startsWith(`${m}.`))) set.add(n);
  }
  return set;
}
