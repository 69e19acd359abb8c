import type { Graph, Model } from '../graph.js';
import type { Pass } from './pass.js';

/**
 * Gives every node and value a unique, non-empty name across the model and its subgraphs
 * (ONNX resolves names through scopes, so a clash between a subgraph and its parent is a bug).
 */
export const uniqueNames: Pass = {
  name: 'unique-names',
  run(model: Model) {
    const seenValues = new Set<string>();
    const seenNodes = new Set<string>();
    let changed = false;
    const fresh = (seen: Set<string>, base: string) => {
      let name = base;
      for (let i = 1; seen.has(name); i++) name = `${base}_${i}`;
      seen.add(name);
      return name;
    };
    const walk = (g: Graph) => {
      const values = [...g.inputs, ...g.initializers.values()];
      for (const n of g.nodes()) values.push(...n.outputs);
      for (const v of values) {
        if (seenValues.has(v.name) || !v.name) {
          const old = v.name;
          v.name = fresh(seenValues, v.name || 'value');
          if (v.const && g.initializers.get(old) === v) {
            g.initializers.delete(old);
            g.initializers.set(v.name, v);
          }
          changed = true;
        } else seenValues.add(v.name);
      }
      for (const n of g.nodes()) {
        if (!n.name || seenNodes.has(n.name)) {
          n.name = fresh(seenNodes, n.name || n.opType);
          changed = true;
        } else seenNodes.add(n.name);
        for (const sg of n.subgraphs()) walk(sg);
      }
    };
    walk(model.graph);
    return { model, changed };
  },
};
