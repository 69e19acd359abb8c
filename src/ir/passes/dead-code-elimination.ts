import { Graph, type Model, type Value } from '../graph.js';
import type { Pass } from './pass.js';

/** Removes nodes whose outputs reach no graph output, and initializers nothing reads. */
export const deadCodeElimination: Pass = {
  name: 'dead-code-elimination',
  run(model: Model) {
    const changed = sweep(model.graph);
    return { model, changed };
  },
};

function sweep(g: Graph): boolean {
  let changed = false;
  const live = new Set<Value>(g.outputs);
  for (const n of [...g.nodes()].reverse()) {
    const needed = n.outputs.some((o) => live.has(o) || [...o.uses].some((u) => u.node.graph !== g));
    if (!needed) {
      g.remove(n, true);
      changed = true;
      continue;
    }
    for (const v of n.inputs) if (v) live.add(v);
    for (const sg of n.subgraphs()) {
      if (sweep(sg)) changed = true;
      for (const v of outerReads(sg)) live.add(v);
    }
  }
  for (const [name, v] of g.initializers) {
    if (v.uses.size === 0 && !g.outputs.includes(v) && !g.inputs.includes(v)) {
      g.initializers.delete(name);
      changed = true;
    }
  }
  return changed;
}

/** Values a subgraph (and its nested subgraphs) reads from enclosing scopes. */
export function outerReads(sg: Graph): Set<Value> {
  const own = new Set<Value>([...sg.inputs, ...sg.initializers.values()]);
  const out = new Set<Value>();
  for (const n of sg.nodes()) {
    for (const o of n.outputs) own.add(o);
  }
  for (const n of sg.nodes()) {
    for (const v of n.inputs) if (v && !own.has(v)) out.add(v);
    for (const inner of n.subgraphs()) for (const v of outerReads(inner)) if (!own.has(v)) out.add(v);
  }
  for (const v of sg.outputs) if (!own.has(v)) out.add(v);
  return out;
}
