/**
 * Linear layers as the graphs hold them — MatMul by a constant [K, N] weight, often followed by
 * a bias Add, or a Gemm (torch.onnx writes a Linear on a 2-D input as one: Optimum's time
 * embeddings and modulation projections) — found and replaced in one place for every quantizer
 * and the qkv factorizer.
 */
import { InMemoryTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';
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

/** A linear layer of either form: its [K, N] float32 weight, the value that holds it, and its [N] bias. */
export interface Linear {
  weight: Tensor;
  /** the initializer the weight is (a Gemm's `transB` one holds it transposed) */
  source: Value;
  bias?: Value;
  /** the bias Add after a MatMul, folded into the replacement */
  add?: Node;
}

/**
 * `node` as a linear layer: a MatMul by a constant [K, N] weight (with its bias Add), or a Gemm
 * that is one (a constant B, `alpha` and `beta` 1, no `transA`, a constant [N] C or none).
 */
export function linearOf(node: Node): Linear | undefined {
  if (node.domain) return undefined;
  if (node.opType === 'MatMul') {
    const w = constWeight2D(node);
    if (!w) return undefined;
    const b = biasAdd(node, w.const!.shape[1]!);
    return { weight: w.const!, source: w, bias: b?.bias, add: b?.add };
  }
  if (node.opType !== 'Gemm' || node.attrInt('transA', 0) !== 0) return undefined;
  if (node.attr('alpha') && node.attr('alpha')!.value !== 1) return undefined;
  if (node.attr('beta') && node.attr('beta')!.value !== 1 && node.inputs[2]) return undefined;
  const w = constWeight2D(node);
  const c = node.inputs[2];
  if (!w) return undefined;
  const transB = node.attrInt('transB', 0) === 1;
  const [r, k] = w.const!.shape as [number, number];
  const n = transB ? r : k;
  if (c && !(c.const?.dtype === 'float32' && c.const.shape.length === 1 && c.const.shape[0] === n)) return undefined;
  return { weight: transB ? transpose(w.const!) : w.const!, source: w, bias: c ?? undefined };
}

/** A [R, C] float32 tensor as [C, R]. */
function transpose(t: Tensor): Tensor {
  const [R, C] = t.shape as [number, number];
  const x = toFloat32(t);
  const y = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) y[c * R + r] = x[r * C + c]!;
  return new InMemoryTensor('float32', [C, R], y);
}

/**
 * Puts `replacement` where `layer` was, producing the value its readers see (the bias Add's
 * output when one was folded), keeps the module metadata, and drops the old nodes and the
 * weights nothing reads any more (so no weight is held twice).
 */
export function replaceLinear(g: Graph, layer: Node, add: Node | undefined, replacement: Node): void {
  const out = (add ?? layer).outputs[0]!;
  for (const [k, v] of layer.metadata) if (!replacement.metadata.has(k)) replacement.metadata.set(k, v);
  replacement.outputs.push(out);
  g.insert(replacement, layer);
  const dropped = [layer, ...(add ? [add] : [])];
  for (const n of dropped) g.remove(n, true);
  dropUnused(g, dropped.flatMap((n) => n.inputs));
}

/** Removes initializers among `values` that nothing reads. */
export function dropUnused(g: Graph, values: readonly (Value | null)[]): void {
  for (const v of values) if (v?.const && !v.uses.size && g.initializers.get(v.name) === v) g.initializers.delete(v.name);
}

export interface LinearLayer {
  node: Node;
  /** [K, N] float32 */
  weight: Tensor;
  /** [N], folded into the replacement */
  bias?: Value;
  /** an initializer named after the weight (`<weight>_<suffix>`), shared when two layers share the weight */
  init(suffix: string, t: Tensor): Value;
}

/**
 * Replaces each selected linear layer of the main graph (`linearOf`) by the com.microsoft node
 * `make` returns (its inputs set, its output given here); returns how many.
 */
export function replaceLinears(model: Model, nodes: readonly Node[], op: string, make: (layer: LinearLayer, n: Node) => void): number {
  const g = model.graph;
  let count = 0;
  for (const node of nodes) {
    const linear = node.graph === g ? linearOf(node) : undefined;
    if (!linear) continue;
    const name = linear.source.name;
    const init = (suffix: string, t: Tensor): Value => g.initializers.get(`${name}_${suffix}`) ?? g.addInitializer(`${name}_${suffix}`, t);
    const n = new Node(op, node.name.replace(/(MatMul|Gemm)(_\d+)?$/, `${op}$2`), MS_DOMAIN);
    make({ node, weight: linear.weight, bias: linear.bias, init }, n);
    replaceLinear(g, node, linear.add, n);
    count++;
  }
  if (count) model.opsetImports.set(MS_DOMAIN, 1);
  return count;
}
