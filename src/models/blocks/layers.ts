/**
 * The layers every architecture is made of, exported as PyTorch's exporter would:
 * Linear → MatMul (+ Add), Conv2d → Conv, GroupNorm → InstanceNormalization on [B, G, -1] then
 * the per-channel affine, LayerNorm → LayerNormalization, activations as elementwise ops that
 * onnxruntime's optimizer fuses (Gelu, FastGelu, SkipLayerNorm…).
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';

export function linear(c: Ctx, name: string, x: Value, inF: number, outF: number, bias = true): Value {
  return c.scope(name, () => {
    let y = c.b.op('MatMul', [x, c.linearWeight('weight', outF, inF)]);
    if (bias) y = c.b.op('Add', [y, c.param('bias', [outF])]);
    return y;
  });
}

export interface ConvOptions {
  kernel?: number;
  stride?: number;
  padding?: number;
  bias?: boolean;
}

export function conv2d(c: Ctx, name: string, x: Value, inC: number, outC: number, o: ConvOptions = {}): Value {
  const k = o.kernel ?? 3;
  const p = o.padding ?? Math.floor(k / 2);
  const s = o.stride ?? 1;
  return c.scope(name, () => {
    const w = c.param('weight', [outC, inC, k, k]);
    const bias = (o.bias ?? true) ? c.param('bias', [outC]) : undefined;
    return c.b.op('Conv', [x, w, bias], { kernel_shape: [k, k], pads: [p, p, p, p], strides: [s, s], dilations: [1, 1], group: 1 });
  });
}

/** GroupNorm over NCHW (or NC…) input. */
export function groupNorm(c: Ctx, name: string, x: Value, groups: number, channels: number, eps: number, affine = true): Value {
  const b = c.b;
  return c.scope(name, () => {
    const shape = b.shape(x);
    const grouped = b.op('Reshape', [x, b.constI64([0, groups, -1])]);
    const ones = b.constF32(Array(groups).fill(1));
    const zeros = b.constF32(Array(groups).fill(0));
    const normed = b.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: eps });
    let y = b.op('Reshape', [normed, shape]);
    if (affine) {
      const w = b.op('Unsqueeze', [c.param('weight', [channels]), b.constI64([1, 2])]);
      const bias = b.op('Unsqueeze', [c.param('bias', [channels]), b.constI64([1, 2])]);
      y = b.add(b.mul(y, w), bias);
    }
    return y;
  });
}

/** LayerNorm over the last axis; `affine: false` uses ones/zeros (diffusers' elementwise_affine=False). */
export function layerNorm(c: Ctx, name: string, x: Value, dim: number, eps: number, affine = true, bias = true): Value {
  const b = c.b;
  return c.scope(name, () => {
    const w = affine ? c.param('weight', [dim]) : b.constF32(Array(dim).fill(1));
    const bb = affine && bias ? c.param('bias', [dim]) : b.constF32(Array(dim).fill(0));
    return b.op('LayerNormalization', [x, w, bb], { axis: -1, epsilon: eps });
  });
}

/** RMSNorm (T5LayerNorm, diffusers RMSNorm): x / sqrt(mean(x²) + eps) * weight, in float32. */
export function rmsNorm(c: Ctx, name: string, x: Value, dim: number, eps: number, affine = true): Value {
  const b = c.b;
  return c.scope(name, () => {
    // opset 17: ReduceMean takes axes as an attribute (an input only from opset 18). As PyTorch's
    // exporter emits `x.pow(2).mean(-1)` and `x * rsqrt(v)`: Pow(x, 2), Div(1, Sqrt), Mul (ONNX
    // Runtime's transformer optimizer matches that pattern, and crashed on Mul(x, x))
    const ms = b.op('ReduceMean', [b.op('Pow', [x, b.constF32(2)])], { axes: [-1], keepdims: 1 });
    const y = b.mul(x, b.div(b.constF32(1), b.op('Sqrt', [b.add(ms, b.constF32(eps))])));
    return affine ? b.mul(y, c.param('weight', [dim])) : y;
  });
}

export function silu(c: Ctx, x: Value): Value {
  return c.b.mul(x, c.b.op('Sigmoid', [x]));
}

/** GELU; `tanh` is the approximation diffusers calls gelu-approximate / gelu_pytorch_tanh. */
export function gelu(c: Ctx, x: Value, approximate: 'none' | 'tanh' = 'none'): Value {
  const b = c.b;
  if (approximate === 'tanh') {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const x3 = b.mul(b.mul(x, x), x);
    const inner = b.mul(b.add(x, b.mul(x3, b.constF32(0.044715))), b.constF32(Math.sqrt(2 / Math.PI)));
    return b.mul(b.mul(x, b.constF32(0.5)), b.add(b.op('Tanh', [inner]), b.constF32(1)));
  }
  const erf = b.op('Erf', [b.div(x, b.constF32(Math.SQRT2))]);
  return b.mul(b.mul(x, b.add(erf, b.constF32(1))), b.constF32(0.5));
}

export function quickGelu(c: Ctx, x: Value): Value {
  return c.b.mul(x, c.b.op('Sigmoid', [c.b.mul(x, c.b.constF32(1.702))]));
}

/** Activation by diffusers/transformers name. */
export function activation(c: Ctx, name: string, x: Value): Value {
  switch (name) {
    case 'silu': case 'swish': return silu(c, x);
    case 'gelu': return gelu(c, x);
    case 'gelu_pytorch_tanh': case 'gelu_new': case 'gelu-approximate': return gelu(c, x, 'tanh');
    case 'quick_gelu': return quickGelu(c, x);
    case 'relu': return c.b.op('Relu', [x]);
    case 'mish': return c.b.mul(x, c.b.op('Tanh', [c.b.op('Softplus', [x])]));
    default: throw new Error(`activation '${name}' is not implemented`);
  }
}

/**
 * Scaled dot-product attention on [B, S, H·D] projections: split heads, softmax(q·kᵀ·scale)·v,
 * merge heads. Optional `bias` is added to the scores (T5's position bias, masks).
 */
export function attention(c: Ctx, q: Value, k: Value, v: Value, heads: number, headDim: number, opts: { scale?: number; bias?: Value } = {}): Value {
  const b = c.b;
  const split = (x: Value) => b.transpose(b.op('Reshape', [x, b.constI64([0, 0, heads, headDim])]), [0, 2, 1, 3]);
  const qh = split(q);
  const kt = b.transpose(b.op('Reshape', [k, b.constI64([0, 0, heads, headDim])]), [0, 2, 3, 1]);
  const vh = split(v);
  const scale = opts.scale ?? 1 / Math.sqrt(headDim);
  let scores = b.matmul(b.mul(qh, b.constF32(Math.sqrt(scale))), b.mul(kt, b.constF32(Math.sqrt(scale))));
  if (opts.bias) scores = b.add(scores, opts.bias);
  const probs = b.op('Softmax', [scores], { axis: -1 });
  const o = b.matmul(probs, vh);
  return b.op('Reshape', [b.transpose(o, [0, 2, 1, 3]), b.constI64([0, 0, heads * headDim])]);
}
