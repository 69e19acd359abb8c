/**
 * Dynamic int8 convolutions: weights int8 per output channel, the input quantized at run time by
 * `DynamicQuantizeLinear`, the integer convolution rescaled to float by input scale × channel scale:
 *
 *     x ─► Conv(W, b) ─► y
 *   ⇒
 *     x ─► DynamicQuantizeLinear ─► ConvInteger(Wq int8, x_zp) ─► Cast(float) ─► Mul(x_scale · w_scale[c]) ─► Add(b[c]) ─► y
 */
import { InMemoryTensor, LazyTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';
import { onnxDataType } from '../../core/dtype.js';
import { Node, Value, type Graph, type Model } from '../../ir/graph.js';
import { dropUnused } from './linear.js';

/** Per-output-channel symmetric int8 of a [C_out, C_in/g, kh, kw] weight. */
export function quantizeConvWeight(w: Tensor): { q: Tensor; scale: Tensor } {
  const C = w.shape[0]!;
  const per = w.shape.slice(1).reduce((a, b) => a * b, 1);
  const compute = () => {
    const x = toFloat32(w);
    const scale = new Float32Array(C);
    const q = new Int8Array(C * per);
    for (let c = 0; c < C; c++) {
      let amax = 0;
      for (let i = 0; i < per; i++) amax = Math.max(amax, Math.abs(x[c * per + i]!));
      const s = amax > 0 ? amax / 127 : 1;
      scale[c] = s;
      for (let i = 0; i < per; i++) q[c * per + i] = Math.max(-127, Math.min(127, Math.round(x[c * per + i]! / s)));
    }
    return { q, scale };
  };
  // the scale is small and needed to build the graph; the int8 weight is made when it is saved
  const scale = compute().scale;
  return {
    q: new LazyTensor('int8', w.shape, () => new Uint8Array(compute().q.buffer)),
    scale: new InMemoryTensor('float32', [1, C, 1, 1], scale),
  };
}

/** Replaces the given float Convs (constant weights) by the ConvInteger chain; returns how many. */
export function quantizeConvsDynamic(model: Model, nodes: readonly Node[]): number {
  const g = model.graph;
  let count = 0;
  for (const conv of nodes) {
    if (conv.opType !== 'Conv' || conv.domain || conv.graph !== g) continue;
    const w = conv.inputs[1];
    if (!w?.const || w.const.dtype !== 'float32') continue;
    const bias = conv.inputs[2];
    if (bias && !bias.const) continue;
    replaceConv(g, conv, w, bias ?? undefined);
    count++;
  }
  return count;
}

function replaceConv(g: Graph, conv: Node, w: Value, bias: Value | undefined): void {
  const base = conv.name.replace(/Conv(_\d+)?$/, '');
  const { q, scale } = quantizeConvWeight(w.const!);
  const out = conv.outputs[0]!;
  const v = (suffix: string, dtype: Value['dtype']) => new Value(`${base}${suffix}`, dtype);
  const node = (op: string, name: string, inputs: (Value | null)[], outputs: Value[], attrs?: Node['attributes']) => {
    const n = new Node(op, `${base}${name}`);
    for (const [k, m] of conv.metadata) n.metadata.set(k, m);
    n.inputs.push(...inputs);
    n.outputs.push(...outputs);
    if (attrs) for (const [k, a] of attrs) n.attributes.set(k, a);
    return n;
  };
  const [xq, xs, xz] = [v('x_quantized', 'uint8'), v('x_scale', 'float32'), v('x_zero_point', 'uint8')];
  const acc = v('ConvInteger_output_0', 'int32');
  const accF = v('ConvInteger_float', 'float32');
  const sc = v('rescale', 'float32');
  const wq = g.addInitializer(`${w.name}_quantized`, q);
  const ws = g.addInitializer(`${w.name}_scale`, scale);
  const scaled = bias ? v('ConvInteger_scaled', 'float32') : out;
  const nodes = [
    node('DynamicQuantizeLinear', 'DynamicQuantizeLinear', [conv.inputs[0]!], [xq, xs, xz]),
    node('ConvInteger', 'ConvInteger', [xq, wq, xz], [acc], conv.attributes),
    node('Cast', 'Cast', [acc], [accF], new Map([['to', { type: 'int', value: onnxDataType('float32') }]])),
    node('Mul', 'ScaleMul', [xs, ws], [sc]),
    node('Mul', 'Rescale', [accF, sc], [scaled]),
  ];
  if (bias) {
    const C = bias.const!.shape[0]!;
    const b4 = g.addInitializer(`${bias.name}_nchw`, new InMemoryTensor('float32', [1, C, 1, 1], toFloat32(bias.const!)));
    nodes.push(node('Add', 'BiasAdd', [scaled, b4], [out]));
  }
  for (const n of nodes) g.insert(n, conv);
  g.remove(conv, true);
  dropUnused(g, conv.inputs);
}
