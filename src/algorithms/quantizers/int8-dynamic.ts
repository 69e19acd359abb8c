/**
 * int8Dynamic (Pruna's torchao `int8dq`): weights int8 per output channel, activations quantized
 * at run time. A MatMul with a constant [K, N] weight becomes ONNX Runtime's
 * `DynamicQuantizeMatMul`, with a following bias Add folded in:
 *
 *     x ─► MatMul(W) ─► Add(b) ─► y    ⇒    x ─► DynamicQuantizeMatMul(Wq int8, scale[N], –, b) ─► y
 */
import { z } from 'zod';
import { Node, type Model, type Value } from '../../ir/graph.js';
import { defineAlgorithm, supported } from '../algorithm.js';
import { quantizeColumnsInt8 } from './int8.js';
import { targetFields, targetNodes } from './targets.js';

export const MS_DOMAIN = 'com.microsoft';

/** A float32 constant [K, N] weight of a MatMul, or undefined. */
export function constWeight2D(node: Node): Value | undefined {
  const w = node.inputs[1];
  return w?.const && w.const.dtype === 'float32' && w.const.shape.length === 2 ? w : undefined;
}

/** The Add that adds a constant [N] bias to a MatMul's only output use, if any. */
export function biasAdd(node: Node, n: number): { add: Node; bias: Value } | undefined {
  const out = node.outputs[0]!;
  if (out.uses.size !== 1 || node.graph!.outputs.includes(out)) return undefined;
  const [use] = out.uses;
  const add = use!.node;
  if (add.opType !== 'Add' || add.domain) return undefined;
  const bias = add.inputs[1 - use!.index];
  return bias?.const && bias.const.dtype === 'float32' && bias.const.shape.length === 1 && bias.const.shape[0] === n ? { add, bias } : undefined;
}

/** Rewrites the selected MatMuls; returns how many were quantized. */
export function quantizeMatMulsDynamic(model: Model, nodes: readonly Node[]): number {
  const g = model.graph;
  let count = 0;
  for (const node of nodes) {
    if (node.opType !== 'MatMul' || node.domain || node.graph !== g) continue;
    const w = constWeight2D(node);
    if (!w) continue;
    const N = w.const!.shape[1]!;
    const { q, scale } = quantizeColumnsInt8(w.const!);
    const folded = biasAdd(node, N);
    const qv = g.initializers.get(`${w.name}_quantized`) ?? g.addInitializer(`${w.name}_quantized`, q);
    const sv = g.initializers.get(`${w.name}_scale`) ?? g.addInitializer(`${w.name}_scale`, scale);
    const dq = new Node('DynamicQuantizeMatMul', node.name.replace(/MatMul(_\d+)?$/, 'DynamicQuantizeMatMul$1'), MS_DOMAIN);
    for (const [k, v] of node.metadata) dq.metadata.set(k, v);
    dq.inputs.push(node.inputs[0]!, qv, sv, null, folded?.bias ?? null);
    const last = folded?.add ?? node;
    const out = last.outputs[0]!;
    // the new node takes over the value that readers see, so names and graph outputs stay
    g.remove(node, true);
    if (folded) g.remove(folded.add, true);
    dq.outputs.push(out);
    g.insert(dq, firstUser(out));
    if (!w.uses.size) g.initializers.delete(w.name);
    if (folded && !folded.bias.uses.size) g.initializers.delete(folded.bias.name);
    count++;
  }
  if (count) model.opsetImports.set(MS_DOMAIN, 1);
  return count;
}

/** Insert before the first reader so the order stays topological. */
function firstUser(v: Value): Node | undefined {
  const users = new Set([...v.uses].map((u) => u.node));
  const g = [...users][0]?.graph;
  if (!g) return undefined;
  for (const n of g.nodes()) if (users.has(n)) return n;
  return undefined;
}

export const int8Dynamic = defineAlgorithm({
  name: 'int8Dynamic',
  kind: 'quantizer',
  description: 'int8 weights per output channel, activations quantized at run time (DynamicQuantizeMatMul)',
  schema: z.object({ ...targetFields }),
  supports: () => supported,
  apply(params) {
    return {
      transform(component, model) {
        quantizeMatMulsDynamic(model, targetNodes(model.graph, component, params));
        return model;
      },
    };
  },
});
