/**
 * Static int8 quantization as QuantizeLinear/DequantizeLinear pairs (the QDQ format), which ONNX
 * Runtime's optimizer fuses into its int8 kernels: a Conv between quantized input and output
 * becomes `QLinearConv` (2.6× a float32 Conv of 320 channels, 3×3, on this AMD EPYC); a MatMul
 * with a quantized input and weight becomes `MatMulIntegerToFloat`.
 *
 *     x ─► Conv(W, b) ─► y        ⇒   x ─► Q ─► DQ ─► Conv(DQ(Wq int8, per channel), b) ─► Q ─► DQ ─► y
 *     x ─► MatMul(W) ─► y         ⇒   x ─► Q ─► DQ ─► MatMul(DQ(Wq int8, per column)) ─► y
 *
 * Activation scales come from calibration: the range each observed value took over a prompt set,
 * every step and guidance branch.
 */
import { InMemoryTensor } from '../../core/tensor.js';
import { Node, Value, type Graph, type Model } from '../../ir/graph.js';
import { inferredRank } from '../../ir/type-inference.js';
import { quantizePerChannelInt8 } from './int8.js';
import { biasAdd, constWeight2D } from './linear.js';

/** The range an activation took during calibration. */
export interface Range {
  min: number;
  max: number;
}

/** The activations a QDQ rewrite of `nodes` needs ranges for: every input, and Conv outputs. */
export function observedValues(nodes: readonly Node[]): string[] {
  const names = new Set<string>();
  for (const n of quantizable(nodes)) {
    names.add(n.inputs[0]!.name);
    if (n.opType === 'Conv') names.add(n.outputs[0]!.name);
  }
  return [...names];
}

/**
 * The nodes among `nodes` a QDQ rewrite quantizes (given ranges): what int8Static touches. The
 * ranks `becomesGemm` reads are the inferred shapes: run `inferDtypes` on the graph first.
 */
export function quantizable(nodes: readonly Node[]): Node[] {
  return nodes.filter((n) => !n.domain && ((n.opType === 'Conv' && n.inputs[1]?.const?.dtype === 'float32') || (n.opType === 'MatMul' && constWeight2D(n) && !becomesGemm(n))));
}

/**
 * A MatMul of a rank-2 input with a bias Add (a UNet's `time_emb_proj`): ONNX Runtime's
 * MatMulAddFusion makes it a Gemm before its QDQ fusions run, and a Gemm fuses (to QGemm) only
 * with a quantized output, so its Q/DQ pairs would stay in the optimized graph: error for no speed.
 * A rank the type inference cannot work out counts as not 2 (quantized as before).
 */
function becomesGemm(n: Node): boolean {
  return !!biasAdd(n, constWeight2D(n)!.const!.shape[1]!) && inferredRank(n.inputs[0]) === 2;
}

/** uint8 asymmetric parameters of a range (it always holds 0, so zero stays exact). */
export function uint8Params(r: Range): { scale: number; zeroPoint: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  const scale = hi > lo ? (hi - lo) / 255 : 1;
  return { scale: Math.fround(scale), zeroPoint: Math.max(0, Math.min(255, Math.round(-lo / scale))) };
}

/**
 * Rewrites the given Convs and MatMuls with the calibrated ranges; a node whose activations have
 * no range (never observed) is left in float. Returns how many were rewritten.
 */
export function quantizeStatic(model: Model, nodes: readonly Node[], ranges: ReadonlyMap<string, Range>): number {
  const g = model.graph;
  const qdq = new Map<Value, Value>();
  let count = 0;
  for (const n of quantizable(nodes)) {
    if (n.graph !== g) continue;
    const x = n.inputs[0]!;
    const y = n.outputs[0]!;
    const rx = ranges.get(x.name);
    const ry = n.opType === 'Conv' ? ranges.get(y.name) : undefined;
    // a Conv writing a graph output keeps float (its quantized output would need the output's name)
    if (!rx || (n.opType === 'Conv' && (!ry || g.outputs.includes(y)))) continue;
    // one Q/DQ pair per activation, shared by all its quantized readers
    let xd = qdq.get(x);
    if (!xd) {
      xd = pair(g, x, rx, n, x.producer?.graph === g ? x.producer : undefined);
      qdq.set(x, xd);
    }
    n.setInput(0, xd);
    const w = n.inputs[1]!;
    const C = w.const!.shape[n.opType === 'Conv' ? 0 : 1]!;
    const { q, scale } = quantizePerChannelInt8(w.const!, n.opType === 'Conv' ? 0 : 1);
    const zero = new InMemoryTensor('int8', [C], new Int8Array(C));
    const wq = g.addInitializer(`${w.name}_quantized`, q);
    const ws = g.addInitializer(`${w.name}_scale`, scale);
    const wz = g.addInitializer(`${w.name}_zero_point`, zero);
    const wd = new Value(`${w.name}_dequantized`, 'float32', [...w.const!.shape]);
    const dq = node('DequantizeLinear', `${n.name}_weight/DequantizeLinear`, [wq, ws, wz], [wd], n);
    dq.attributes.set('axis', { type: 'int', value: n.opType === 'Conv' ? 0 : 1 });
    g.insert(dq, n);
    n.setInput(1, wd);
    if (!w.uses.size) g.initializers.delete(w.name);
    if (ry) {
      // the readers of y read its Q/DQ copy: QLinearConv writes quantized output
      const readers = y.useList();
      const yd = pair(g, y, ry, n, n);
      for (const u of readers) u.node.setInput(u.index, yd);
    }
    count++;
  }
  return count;
}

function node(op: string, name: string, inputs: Value[], outputs: Value[], like: Node): Node {
  const n = new Node(op, name);
  for (const [k, v] of like.metadata) n.metadata.set(k, v);
  n.inputs.push(...inputs);
  n.outputs.push(...outputs);
  return n;
}

/** v ─► QuantizeLinear ─► DequantizeLinear, inserted right after `after` (v's producer; none: a graph input, at the start). */
function pair(g: Graph, v: Value, r: Range, like: Node, after: Node | undefined): Value {
  const { scale, zeroPoint } = uint8Params(r);
  const s = g.addInitializer(`${v.name}_scale`, new InMemoryTensor('float32', [], Float32Array.of(scale)));
  const z = g.addInitializer(`${v.name}_zero_point`, new InMemoryTensor('uint8', [], Uint8Array.of(zeroPoint)));
  const q = new Value(`${v.name}_quantized`, 'uint8', v.shape && [...v.shape]);
  const d = new Value(`${v.name}_dequantized`, 'float32', v.shape && [...v.shape]);
  const qn = node('QuantizeLinear', `${v.name}/QuantizeLinear`, [v, s, z], [q], like);
  const dn = node('DequantizeLinear', `${v.name}/DequantizeLinear`, [q, s, z], [d], like);
  const at = after ? after.next : g.nodeList()[0];
  g.insert(qn, at);
  g.insert(dn, at);
  return d;
}
