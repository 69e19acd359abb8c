import { ModelFormatError } from '../errors.js';
import { Graph, Model, Node, Value } from './graph.js';
import { outerReads } from './passes/dead-code-elimination.js';

/**
 * The subgraph that computes `outputs` from `inputs` (value names): a new Model whose graph
 * inputs are `inputs`, with only the nodes and initializers needed. Fails, naming the value,
 * when an output depends on a graph input that is not among `inputs`.
 * Tensors (weights) are shared with the source model, not copied.
 */
export function extractSubgraph(model: Model, inputs: readonly string[], outputs: readonly string[]): Model {
  const src = model.graph;
  const byName = src.values();
  const get = (n: string) => {
    const v = byName.get(n);
    if (!v) throw new ModelFormatError('VALUE_MISSING', `no value named '${n}' in graph '${src.name}'`);
    return v;
  };
  const inVals = inputs.map(get);
  const outVals = outputs.map(get);
  const boundary = new Set(inVals);
  const needed = new Set<Node>();
  const stack = [...outVals];
  const seen = new Set<Value>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v) || boundary.has(v)) continue;
    seen.add(v);
    if (v.const) continue;
    if (!v.producer) throw new ModelFormatError('EXTRACT_UNBOUNDED', `'${v.name}' depends on graph input '${v.name}', which is not among the given inputs`);
    needed.add(v.producer);
    for (const i of v.producer.inputs) if (i) stack.push(i);
    for (const sg of v.producer.subgraphs()) stack.push(...outerReads(sg));
  }
  // copy nodes (sharing subgraph objects would tie the two models together; subgraphs are reused read-only)
  const g = new Graph(`${src.name}_extract`);
  const map = new Map<Value, Value>();
  const mapped = (v: Value): Value => {
    let m = map.get(v);
    if (!m) {
      m = new Value(v.name, v.dtype, v.shape ? [...v.shape] : undefined);
      if (v.const) {
        m.const = v.const;
        g.initializers.set(v.name, m);
      }
      map.set(v, m);
    }
    return m;
  };
  for (const v of inVals) g.inputs.push(mapped(v));
  for (const n of src.nodes()) {
    if (!needed.has(n)) continue;
    const c = new Node(n.opType, n.name, n.domain);
    for (const [k, a] of n.attributes) c.attributes.set(k, a);
    for (const i of n.inputs) c.inputs.push(i ? mapped(i) : null);
    for (const o of n.outputs) c.outputs.push(mapped(o));
    // outer values read by subgraphs must exist in the new graph too
    for (const sg of n.subgraphs()) for (const v of outerReads(sg)) mapped(v);
    g.insert(c);
  }
  for (const v of outVals) g.outputs.push(mapped(v));
  const m = new Model(g);
  m.irVersion = model.irVersion;
  m.opsetImports = new Map(model.opsetImports);
  m.functions = model.functions;
  return m;
}
