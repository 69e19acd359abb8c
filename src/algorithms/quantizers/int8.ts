/**
 * int8 weight arithmetic shared by the int8 quantizers: symmetric per-output-channel scales
 * (torchao's int8 weights, ONNX Runtime's per-channel quantize_dynamic), so zero stays exact
 * and no zero point is needed.
 */
import { InMemoryTensor, LazyTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';

export interface Int8Weight {
  /** int8 [K, N], same layout as the float weight */
  q: Tensor;
  /** float32 [N]: w ≈ q × scale per column */
  scale: Tensor;
}

/** Quantizes a [K, N] MatMul weight per column (output channel). */
export function quantizeColumnsInt8(w: Tensor): Int8Weight {
  const [K, N] = w.shape as [number, number];
  const x = toFloat32(w);
  const amax = new Float32Array(N);
  for (let k = 0; k < K; k++) {
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const a = Math.abs(x[row + n]!);
      if (a > amax[n]!) amax[n] = a;
    }
  }
  const scale = new Float32Array(N);
  for (let n = 0; n < N; n++) scale[n] = amax[n]! > 0 ? amax[n]! / 127 : 1;
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) {
    const row = k * N;
    for (let n = 0; n < N; n++) q[row + n] = Math.max(-127, Math.min(127, Math.round(x[row + n]! / scale[n]!)));
  }
  return { q: new InMemoryTensor('int8', [K, N], q), scale: new InMemoryTensor('float32', [N], scale) };
}

/**
 * The same, computed when the tensors are first read (when a graph is saved or handed to a
 * session), so converting a checkpoint larger than memory streams: the float weight is read once
 * for both tensors, and the result is dropped as soon as both have been read.
 */
export function lazyQuantizeColumnsInt8(w: Tensor): Int8Weight {
  const [K, N] = w.shape as [number, number];
  let memo: Int8Weight | undefined;
  const pending = new Set<'q' | 'scale'>();
  const read = (part: 'q' | 'scale') => () => {
    if (!memo) {
      memo = quantizeColumnsInt8(w);
      pending.add('q').add('scale');
    }
    const bytes = memo[part].bytes();
    pending.delete(part);
    if (!pending.size) memo = undefined;
    return bytes;
  };
  return { q: new LazyTensor('int8', [K, N], read('q')), scale: new LazyTensor('float32', [N], read('scale')) };
}

/** The float weight the int8 one stands for (for error bounds and tests). */
export function dequantizeColumnsInt8({ q, scale }: Int8Weight): Float32Array {
  const [K, N] = q.shape as [number, number];
  const qs = new Int8Array(q.bytes().buffer, q.bytes().byteOffset, K * N);
  const s = toFloat32(scale);
  const out = new Float32Array(K * N);
  for (let i = 0; i < K * N; i++) out[i] = qs[i]! * s[i % N]!;
  return out;
}
