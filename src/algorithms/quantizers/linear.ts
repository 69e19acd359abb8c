/**
 * Linear layers as the graphs hold them — MatMul by a constant [K, N] weight, often followed by
 * a bias Add — found and replaced in one place for every quantizer and the qkv factorizer.
 */
import type { Tensor } from '../../core/tensor.js';
import { Node, type Graph, type Model, type Value } from '../../ir/graph.js';

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

/**
 * Puts `replacement` where `matmul` was, producing the value its readers see (the bias Add's
 * output when one was folded), keeps the module metadata, and drops the old nodes and the
 * weights nothing reads any more (so no weight is held twice).
 */
export function replaceLinear(g: Graph, matmul: Node, folded: { add: Node; bias: Value } | undefined, replacement: Node): void {
  const out = (folded?.add ?? matmul).outputs[0]!;
  for (const [k, v] of matmul.metadata) if (!replacement.metadata.has(k)) replacement.metadata.set(k, v);
  replacement.outputs.push(out);
  g.insert(replacement, matmul);
  const dropped = [matmul, ...(folded ? [folded.add] : [])];
  for (const n of dropped) g.remove(n, true);
  dropUnused(g, dropped.flatMap((n) => n.inputs));
}

/** Removes initializers among `values` that nothing reads. */
export function dropUnused(g: Graph, values: readonly (Value | null)[]): void {
  for (const v of values) if (v?.const && !v.uses.size && g.initializers.get(v.name) === v) g.initializers.delete(v.name);
}

export interface LinearLayer {
  node: Node;
  weight: Value;
  /** the bias Add folded into the replacement, if any */
  folded?: { add: Node; bias: Value };
  /** an initializer named after the weight (`<weight>_<suffix>`), shared when two layers share the weight */
  init(suffix: string, t: Tensor): Value;
}

/**
 * Replaces each selected linear layer (a MatMul of the main graph by a constant [K, N] weight) by
 * the com.microsoft node `make` returns (its inputs set, its output given here); returns how many.
 */
export function replaceLinears(model: Model, nodes: readonly Node[], op: string, make: (layer: LinearLayer, n: Node) => void): number {
  const g = model.graph;
  let count = 0;
  for (const node of nodes) {
    if (node.opType !== 'MatMul' || node.domain || node.graph !== g) continue;
    const weight = constWeight2D(node);
    if (!weight) continue;
    const folded = biasAdd(node, weight.const!.shape[1]!);
    const init = (suffix: string, t: Tensor): Value => g.initializers.get(`${weight.name}_${suffix}`) ?? g.addInitializer(`${weight.name}_${suffix}`, t);
    const n = new Node(op, node.name.replace(/MatMul(_\d+)?$/, `${op}$1`), MS_DOMAIN);
    make({ node, weight, folded, init }, n);
    replaceLinear(g, node, folded, n);
    count++;
  }
  if (count) model.opsetImports.set(MS_DOMAIN, 1);
  return count;
}
