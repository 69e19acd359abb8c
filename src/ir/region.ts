import { CompatibilityError } from '../errors.js';
import type { DType } from '../core/dtype.js';
import { Graph, Node, Value, allNodes, type Dim } from './graph.js';
import { inferDtypes } from './type-inference.js';
import { sortGraph } from './passes/topological-sort.js';

/**
 * Regions: a set of nodes of a graph put behind an ONNX `If`, so that a condition decides at run
 * time whether they are computed or their results are taken from elsewhere (a cache).
 *
 *   before:  a ─► [region nodes] ─► e ─► consumers          (a: outer value, e: escaping value)
 *
 *   after:   cond ─► If ─► e' ─► consumers
 *                    then_branch: [region nodes] reading `a` from the outer scope ─► e
 *                    else_branch: Identity(replacement of e) ─► e
 *
 * Values produced in the region and read outside it (or graph outputs) escape: they become the
 * If's outputs (which take over their names, so consumers and graph outputs keep theirs;
 * `expose` renames them instead). Outer values the region reads are captured by name, as ONNX
 * subgraphs read enclosing scopes.
 * Initializers only the region reads move into the then-branch, so its weights sit in the
 * branch's own initializers (onnxruntime runs such a branch as fast as the plain graph).
 */

export interface RegionOptions {
  /** the If's node name (default `/region/If`); its outputs' inner values get `<name>` suffixes */
  name?: string;
  /** the condition: a bool value of the graph, or the name of a new scalar bool graph input (default `cond`) */
  cond?: Value | string;
  /**
   * What the else-branch returns for each escaping value: a map escaping value → graph value, or
   * a function creating one (e.g. `newInputs(graph, (v) => 'cached.' + v.name)`). Dtypes must match.
   */
  replacement: Map<Value, Value> | ((escaping: Value, index: number) => Value);
  /**
   * also expose each escaping value as a graph output with this name: the If's output itself,
   * renamed (an escaping value that is a graph output already keeps its name, and an Identity
   * gives the exposed one)
   */
  expose?: (escaping: Value, index: number) => string;
}

export interface Region {
  ifNode: Node;
  cond: Value;
  then: Graph;
  else: Graph;
  /** the values produced in the region and read outside it, in order (they now live in `then`) */
  escaping: Value[];
  /** the If's outputs, one per escaping value: what the rest of the graph reads now */
  outputs: Value[];
  /** the else-branch's values, one per escaping value */
  replacements: Value[];
  /** graph outputs added by `expose`, one per escaping value (empty without it): mostly `outputs` themselves */
  exposed: Value[];
  /** initializers moved into the then-branch */
  movedInitializers: string[];
}

/**
 * A replacement function for `gateRegion`: a new graph input per escaping value, of its dtype and
 * of its shape, or of `shape(escaping)` where given (declare at least the rank when the value's
 * shape is unknown: onnxruntime reports an input without a shape as a scalar).
 */
export function newInputs(graph: Graph, name: (escaping: Value, index: number) => string, shape?: (escaping: Value, index: number) => Dim[] | undefined): (escaping: Value, index: number) => Value {
  return (v, i) => addInput(graph, name(v, i), v.dtype!, shape?.(v, i) ?? v.shape);
}

function addInput(graph: Graph, name: string, dtype: DType, shape?: Dim[]): Value {
  if (graph.values().has(name)) throw new CompatibilityError('REGION_NAME_TAKEN', `graph '${graph.name}' already has a value named '${name}'`);
  const v = new Value(name, dtype, shape ? [...shape] : undefined);
  graph.inputs.push(v);
  return v;
}

/**
 * The nodes between region nodes: `nodes` plus every node of `graph` that depends on one of them
 * and feeds one of them (the smallest convex set holding them, the only kind an If can replace).
 */
export function convexHull(graph: Graph, nodes: Iterable<Node>): Set<Node> {
  const set = new Set(nodes);
  const order = graph.nodeList();
  // forward: nodes reachable from the set; backward: nodes that reach it; the hull is set ∪ (both)
  const down = new Set<Node>();
  for (const n of order) {
    if (set.has(n) || down.has(n)) for (const c of consumers(graph, n)) down.add(c);
  }
  const up = new Set<Node>();
  for (const n of [...order].reverse()) {
    if (set.has(n) || up.has(n)) for (const p of producers(graph, n)) up.add(p);
  }
  for (const n of order) if (down.has(n) && up.has(n)) set.add(n);
  return set;
}

/** Top-level nodes of `graph` reading an output of `n` (directly or from inside their subgraphs). */
function consumers(graph: Graph, n: Node): Node[] {
  const out: Node[] = [];
  for (const o of n.outputs) for (const u of o.uses) { const t = topLevel(graph, u.node); if (t) out.push(t); }
  return out;
}

/** Top-level nodes of `graph` producing a value `n` reads (directly or from inside its subgraphs). */
function producers(graph: Graph, n: Node): Node[] {
  const out: Node[] = [];
  for (const m of [n, ...n.subgraphs().flatMap((sg) => [...allNodes(sg)])]) {
    for (const v of m.inputs) if (v?.producer?.graph === graph) out.push(v.producer);
  }
  return out;
}

/** The node of `graph` that is `n` or holds `n` in one of its subgraphs. */
function topLevel(graph: Graph, n: Node): Node | undefined {
  let m: Node | undefined = n;
  while (m && m.graph !== graph) m = m.graph?.parentNode;
  return m;
}

/**
 * Puts `nodes` (nodes of `graph`, a convex set: see `convexHull`) behind a new If node; see the
 * module comment. Dtypes of escaping values are inferred where missing and must be known.
 */
export function gateRegion(graph: Graph, nodes: Iterable<Node>, opts: RegionOptions): Region {
  const name = opts.name ?? '/region/If';
  const region = new Set(nodes);
  if (!region.size) throw new CompatibilityError('REGION_EMPTY', `region '${name}' has no nodes`);
  for (const n of region) if (n.graph !== graph) throw new CompatibilityError('REGION_FOREIGN_NODE', `node '${n.name}' of region '${name}' is not in graph '${graph.name}'`);
  // subgraphs built without a parent pointer: set it, so uses from inside them find their node
  for (const n of allNodes(graph)) for (const sg of n.subgraphs()) sg.parentNode ??= n;
  const hull = convexHull(graph, region);
  for (const n of hull) {
    if (!region.has(n)) throw new CompatibilityError('REGION_NOT_CONVEX', `region '${name}' is not convex: node '${n.name}' reads a value of the region and feeds the region; add it (convexHull)`);
  }
  const inside = (n: Node) => region.has(topLevel(graph, n)!);

  // escaping values: read by a node outside the region, or graph outputs
  const graphOutputs = new Set(graph.outputs);
  const escaping: Value[] = [];
  for (const n of graph.nodes()) {
    if (!region.has(n)) continue;
    for (const o of n.outputs) if (graphOutputs.has(o) || [...o.uses].some((u) => !inside(u.node))) escaping.push(o);
  }
  if (!escaping.length) throw new CompatibilityError('REGION_NO_OUTPUT', `region '${name}' computes nothing read outside it`);
  if (escaping.some((v) => !v.dtype)) inferDtypes(graph);
  for (const v of escaping) if (!v.dtype) throw new CompatibilityError('REGION_DTYPE_UNKNOWN', `value '${v.name}' leaves region '${name}' but its dtype is unknown`);

  const replacements = escaping.map((v, i) => {
    const r = opts.replacement instanceof Map ? opts.replacement.get(v) : opts.replacement(v, i);
    if (!r) throw new CompatibilityError('REGION_REPLACEMENT_MISSING', `no replacement given for '${v.name}', which leaves region '${name}'`);
    if (r.dtype && r.dtype !== v.dtype) throw new CompatibilityError('REGION_REPLACEMENT_DTYPE', `replacement '${r.name}' is ${r.dtype}, '${v.name}' is ${v.dtype}`);
    if (r.producer && region.has(r.producer)) throw new CompatibilityError('REGION_REPLACEMENT_INSIDE', `replacement '${r.name}' is computed inside region '${name}'`);
    return r;
  });
  const cond = typeof opts.cond === 'object' ? opts.cond : addInput(graph, opts.cond ?? 'cond', 'bool', []);

  // initializers only the region reads move with it
  const moved: Value[] = [];
  for (const v of graph.initializers.values()) {
    if (v.uses.size && [...v.uses].every((u) => inside(u.node)) && !graphOutputs.has(v) && !graph.inputs.includes(v)) moved.push(v);
  }

  // the If's outputs take over the escaping values' names; inside, those get a suffix
  const ifNode = new Node('If', name);
  const outputs = escaping.map((v) => {
    const o = new Value(v.name, v.dtype, v.shape ? [...v.shape] : undefined);
    v.name = `${v.name}${name}/then`;
    return o;
  });
  // redirect outside reads (including from inside other nodes' subgraphs) and graph outputs
  escaping.forEach((v, i) => {
    for (const u of v.useList()) if (!inside(u.node)) u.node.setInput(u.index, outputs[i]!);
    graph.outputs.forEach((o, k) => { if (o === v) graph.outputs[k] = outputs[i]!; });
    for (const n of graph.nodes()) if (!region.has(n)) for (const g of allSubgraphs(n)) g.outputs.forEach((o, k) => { if (o === v) g.outputs[k] = outputs[i]!; });
  });

  const then = new Graph(`${name}/then_branch`);
  const before = lastOf(graph, region)?.next;
  for (const n of graph.nodeList()) {
    if (!region.has(n)) continue;
    graph.remove(n, true);
    then.insert(n);
  }
  for (const v of moved) {
    graph.initializers.delete(v.name);
    then.initializers.set(v.name, v);
  }
  then.outputs.push(...escaping);

  const els = new Graph(`${name}/else_branch`);
  // an Identity per output: a branch output that is an outer value, as is, is not portable
  escaping.forEach((v, i) => {
    const id = new Node('Identity', `${name}/else/Identity_${i}`);
    id.inputs.push(replacements[i]!);
    id.outputs.push(new Value(`${outputs[i]!.name}${name}/else`, v.dtype, v.shape ? [...v.shape] : undefined));
    els.insert(id);
    els.outputs.push(id.outputs[0]!);
  });

  ifNode.inputs.push(cond);
  ifNode.outputs.push(...outputs);
  ifNode.attributes.set('then_branch', { type: 'graph', value: then });
  ifNode.attributes.set('else_branch', { type: 'graph', value: els });
  then.parentNode = els.parentNode = ifNode;
  graph.insert(ifNode, before);

  const exposed: Value[] = [];
  if (opts.expose) {
    const taken = graph.values();
    outputs.forEach((o, i) => {
      const outName = opts.expose!(escaping[i]!, i);
      if (taken.has(outName)) throw new CompatibilityError('REGION_NAME_TAKEN', `graph '${graph.name}' already has a value named '${outName}'`);
      // the If's output itself becomes the graph output, renamed: an Identity would copy it on
      // every call (onnxruntime cannot drop an Identity whose result is a graph output)
      if (!graph.outputs.includes(o)) {
        o.name = outName;
        graph.outputs.push(o);
        exposed.push(o);
        return;
      }
      // an escaping graph output keeps its name: the exposed name is a copy of it
      const id = new Node('Identity', `${name}/expose/Identity_${i}`);
      id.inputs.push(o);
      id.outputs.push(new Value(outName, o.dtype, o.shape ? [...o.shape] : undefined));
      graph.insert(id);
      graph.outputs.push(id.outputs[0]!);
      exposed.push(id.outputs[0]!);
    });
  }
  // a replacement computed after the region, or consumers interleaved with it, need reordering
  sortGraph(graph);
  return { ifNode, cond, then, else: els, escaping, outputs, replacements, exposed, movedInitializers: moved.map((v) => v.name) };
}

function lastOf(graph: Graph, set: Set<Node>): Node | undefined {
  let last: Node | undefined;
  for (const n of graph.nodes()) if (set.has(n)) last = n;
  return last;
}

function allSubgraphs(n: Node): Graph[] {
  return n.subgraphs().flatMap((sg) => [sg, ...[...allNodes(sg)].flatMap((m) => m.subgraphs())]);
}
