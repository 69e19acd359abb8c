/**
 * int8 weight arithmetic shared by the int8 quantizers: symmetric per-channel scales (torchao's
 * int8 weights, ONNX Runtime's per-channel quantization), so zero stays exact and no zero point
 * is needed. The scales are computed at once (they are small and shape the graph); the int8
 * weight is made when it is read — when the graph is saved or handed to a session — so
 * converting a checkpoint larger than memory streams.
 */
import { InMemoryTensor, LazyTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';

export interface Int8Weight {
  /** int8, the float weight's shape */
  q: Tensor;
  /** float32 [C]: w ≈ q × scale along the axis */
  scale: Tensor;
}

/** Element `i` of channel `c`: axis 0 is a Conv's output channels, axis 1 a [K, N] MatMul weight's columns. */
function layout(shape: readonly number[], axis: 0 | 1) {
  const C = shape[axis]!;
  const count = shape.reduce((a, b) => a * b, 1) / C;
  const inner = axis === 0 ? count : 1;
  const index = axis === 0 ? (c: number, i: number) => c * inner + i : (c: number, i: number) => i * C + c;
  return { C, count, index };
}

/** Quantizes a float weight per channel along `axis`. */
export function quantizePerChannelInt8(w: Tensor, axis: 0 | 1): Int8Weight {
  const { C, count, index } = layout(w.shape, axis);
  const x = toFloat32(w);
  const scales = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    let amax = 0;
    for (let i = 0; i < count; i++) amax = Math.max(amax, Math.abs(x[index(c, i)]!));
    scales[c] = amax > 0 ? amax / 127 : 1;
  }
  const q = new LazyTensor('int8', w.shape, () => {
    const v = toFloat32(w);
    const out = new Int8Array(v.length);
    for (let c = 0; c < C; c++) for (let i = 0; i < count; i++) out[index(c, i)] = Math.max(-127, Math.min(127, Math.round(v[index(c, i)]! / scales[c]!)));
    return new Uint8Array(out.buffer);
  });
  return { q, scale: new InMemoryTensor('float32', [C], scales) };
}

/** The float weight an int8 one stands for (for error bounds and tests). */
export function dequantizePerChannelInt8({ q, scale }: Int8Weight, axis: 0 | 1): Float32Array {
  const { C, count, index } = layout(q.shape, axis);
  const b = q.bytes();
  const qs = new Int8Array(b.buffer, b.byteOffset, b.byteLength);
  const s = toFloat32(scale);
  const out = new Float32Array(qs.length);
  for (let c = 0; c < C; c++) for (let i = 0; i < count; i++) out[index(c, i)] = qs[index(c, i)]! * s[c]!;
  return out;
}
