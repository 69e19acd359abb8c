import { ModelFormatError } from '../../errors.js';
import type { Graph, Model, Node } from '../graph.js';
import { outerReads } from './dead-code-elimination.js';
import type { Pass } from './pass.js';

/** Orders nodes so each comes after the producers of its inputs (stable: keeps order where it can). */
export const topologicalSort: Pass = {
  name: 'topological-sort',
  run(model: Model) {
    return { model, changed: sortGraph(model.graph) };
  },
};

/** Sorts one graph (and its subgraphs) in place; true when the order changed. */
export function sortGraph(g: Graph): boolean {
  const nodes = g.nodeList();
  const inGraph = new Set(nodes);
  const deps = new Map<Node, Set<Node>>();
  for (const n of nodes) {
    const d = new Set<Node>();
    const reads = [...n.inputs, ...n.subgraphs().flatMap((sg) => [...outerReads(sg)])];
    for (const v of reads) if (v?.producer && inGraph.has(v.producer) && v.producer !== n) d.add(v.producer);
    deps.set(n, d);
  }
  const order: Node[] = [];
  const state = new Map<Node, 1 | 2>();
  const visit = (n: Node) => {
    const s = state.get(n);
    if (s === 2) return;
    if (s === 1) throw new ModelFormatError('GRAPH_CYCLE', `graph '${g.name}' has a cycle through node '${n.name}'`);
    state.set(n, 1);
    for (const d of deps.get(n)!) visit(d);
    state.set(n, 2);
    order.push(n);
  };
  for (const n of nodes) visit(n);
  let changed = order.some((n, i) => n !== nodes[i]);
  if (changed) {
    for (const n of nodes) g.remove(n, true);
    for (const n of order) g.insert(n);
  }
  for (const n of order) for (const sg of n.subgraphs()) if (sortGraph(sg)) changed = true;
  return changed;
}
