/**
 * Dynamic int8 convolutions: weights int8 per output channel, the input quantized at run time by
 * `DynamicQuantizeLinear`, the integer convolution rescaled to float by input scale × channel scale:
 *
 *     x ─► Conv(W, b) ─► y
 *   ⇒
 *     x ─► DynamicQuantizeLinear ─► ConvInteger(Wq int8, x_zp) ─► Cast(float) ─► Mul(x_scale · w_scale[c]) ─► Add(b[c]) ─► y
 */
import { InMemoryTensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';
import { onnxDataType } from '../../core/dtype.js';
import { Node, Value, type Graph, type Model } from '../../ir/graph.js';
import { quantizePerChannelInt8 } from './int8.js';
import { dropUnused } from './linear.js';

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
  const { q, scale } = quantizePerChannelInt8(w.const!, 0);
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
  // [1, C, 1, 1]: broadcast over the NCHW accumulator
  const ws = g.addInitializer(`${w.name}_scale`, new InMemoryTensor('float32', [1, scale.shape[0]!, 1, 1], toFloat32(scale)));
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
