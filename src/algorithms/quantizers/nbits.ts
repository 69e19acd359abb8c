/**
 * Weight-only quantization to ONNX Runtime's `MatMulNBits` (CPU, CUDA and WebGPU run it): each
 * output column's K weights in blocks of `blockSize`, one scale per block (and optionally one
 * zero point), packed low bits first. Activations stay float; the weights shrink 4× (int8) or
 * 8× (int4), which is what makes a FLUX download and its memory fit.
 *
 *     x ─► MatMul(W[K,N]) ─► Add(b) ─► y    ⇒    x ─► MatMulNBits(B[N, blocks, blob], scales, zp?, bias b) ─► y
 */
import { InMemoryTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';
import type { Model, Node } from '../../ir/graph.js';
import { replaceLinears } from './linear.js';

export interface NBitsOptions {
  bits: 4 | 8;
  blockSize: number;
  /** asymmetric blocks with a zero point each (min/max), else symmetric around the default zero point */
  zeroPoints: boolean;
}

export interface PackedWeight {
  /** uint8 [N, blocks, blockSize × bits / 8] */
  packed: Tensor;
  /** float32 [N × blocks] */
  scales: Tensor;
  /** uint8, packed like the weights (two 4-bit zero points a byte), when asymmetric */
  zeroPoints?: Tensor;
  K: number;
  N: number;
}

/** Quantizes a [K, N] float weight into MatMulNBits' layout. */
export function packNBits(w: Tensor, o: NBitsOptions): PackedWeight {
  const [K, N] = w.shape as [number, number];
  const x = toFloat32(w);
  const levels = (1 << o.bits) - 1;
  const blocks = Math.ceil(K / o.blockSize);
  const blob = (o.blockSize * o.bits) / 8;
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  // 4-bit zero points pack two a byte within each column's row: [N, ceil(blocks / 2)]
  const zpRow = o.bits === 4 ? Math.ceil(blocks / 2) : blocks;
  const zps = o.zeroPoints ? new Uint8Array(N * zpRow) : undefined;
  const q = new Uint8Array(o.blockSize);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * o.blockSize;
      const k1 = Math.min(K, k0 + o.blockSize);
      const { scale, zp } = fitBlock(x, k0, k1, n, N, o.bits, !!zps);
      const idx = n * blocks + b;
      scales[idx] = scale;
      if (zps) {
        if (o.bits === 4) zps[n * zpRow + (b >> 1)]! |= zp << ((b & 1) * 4);
        else zps[idx] = zp;
      }
      q.fill(zp);
      for (let k = k0; k < k1; k++) q[k - k0] = Math.max(0, Math.min(levels, Math.round(x[k * N + n]! / scale) + zp));
      const base = idx * blob;
      if (o.bits === 8) packed.set(q, base);
      else for (let i = 0; i < blob; i++) packed[base + i] = q[2 * i]! | (q[2 * i + 1]! << 4);
    }
  }
  return {
    packed: new InMemoryTensor('uint8', [N, blocks, blob], packed),
    scales: new InMemoryTensor('float32', [N * blocks], scales),
    zeroPoints: zps && new InMemoryTensor('uint8', [zps.length], zps),
    K,
    N,
  };
}

/**
 * The scale (and zero point) of one block: the range is shrunk by the factor, among a few, that
 * gives the least squared error — clipping the rare largest weights buys resolution for all the
 * others (what llama.cpp's and HQQ's searches do), which matters most at 4 bits.
 */
function fitBlock(x: Float32Array, k0: number, k1: number, n: number, N: number, bits: number, asymmetric: boolean): { scale: number; zp: number } {
  const levels = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  let lo = 0;
  let hi = 0;
  for (let k = k0; k < k1; k++) {
    const v = x[k * N + n]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi === lo) return { scale: 1, zp: asymmetric ? 0 : mid };
  let best = { scale: 1, zp: mid, err: Infinity };
  for (let f = 1; f >= 0.5; f -= 0.025) {
    let scale: number;
    let zp: number;
    if (asymmetric) {
      scale = Math.fround(((hi - lo) * f) / levels);
      zp = Math.max(0, Math.min(levels, Math.round((-lo * f) / scale)));
    } else {
      // symmetric around the default zero point `mid`: the larger side maps to −mid or mid − 1
      const amax = Math.max(-lo, hi) * f;
      scale = Math.fround(-lo >= hi ? amax / mid : amax / (mid - 1));
      zp = mid;
    }
    let err = 0;
    for (let k = k0; k < k1; k++) {
      const v = x[k * N + n]!;
      const d = v - (Math.max(0, Math.min(levels, Math.round(v / scale) + zp)) - zp) * scale;
      err += d * d;
    }
    if (err < best.err) best = { scale, zp, err };
  }
  return best;
}

/** The [K, N] float weight a packed one stands for (what MatMulNBits computes with). */
export function unpackNBits(p: PackedWeight, o: Pick<NBitsOptions, 'bits' | 'blockSize'>): Float32Array {
  const { K, N } = p;
  const blocks = Math.ceil(K / o.blockSize);
  const blob = (o.blockSize * o.bits) / 8;
  const packed = p.packed.bytes();
  const scales = toFloat32(p.scales);
  const zps = p.zeroPoints?.bytes();
  const zpRow = o.bits === 4 ? Math.ceil(blocks / 2) : blocks;
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const idx = n * blocks + b;
      const zp = zps ? (o.bits === 4 ? (zps[n * zpRow + (b >> 1)]! >> ((b & 1) * 4)) & 15 : zps[idx]!) : 1 << (o.bits - 1);
      for (let k = b * o.blockSize; k < Math.min(K, (b + 1) * o.blockSize); k++) {
        const i = k - b * o.blockSize;
        const byte = packed[idx * blob + (o.bits === 8 ? i : i >> 1)]!;
        const qv = o.bits === 8 ? byte : (byte >> ((i & 1) * 4)) & 15;
        out[k * N + n] = (qv - zp) * scales[idx]!;
      }
    }
  }
  return out;
}

/** Rewrites the selected linear layers (MatMul or Gemm by a constant weight) into MatMulNBits; returns how many. */
export function quantizeMatMulsNBits(model: Model, nodes: readonly Node[], o: NBitsOptions): number {
  return replaceLinears(model, nodes, 'MatMulNBits', ({ node, weight, bias, init }, mm) => {
    const p = packNBits(weight, o);
    mm.inputs.push(node.inputs[0]!, init(`q${o.bits}`, p.packed), init('scales', p.scales), p.zeroPoints ? init('zero_points', p.zeroPoints) : null);
    if (bias) mm.inputs.push(null, bias);
    for (const [k, v] of Object.entries({ K: p.K, N: p.N, bits: o.bits, block_size: o.blockSize })) mm.attributes.set(k, { type: 'int', value: v });
  });
}
