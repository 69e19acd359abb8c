import { viewAs, type DType } from './dtype.js';
import { LazyTensor, type Tensor } from './tensor.js';
import { ConfigError } from '../errors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half -> float32. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 -> IEEE half, rounding to nearest even (as torch and numpy do). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  return f32BitsToF16(u32[0]!);
}

/** The same from the float32's bit pattern (for callers that already hold bits). */
export function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = mant >> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** float32 -> bfloat16, rounding to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

const FLOATS: DType[] = ['float32', 'float16', 'bfloat16', 'float64'];

/** Converts a float array between float32/float16/bfloat16/float64; returns raw little-endian bytes. */
export function convertFloatBytes(from: DType, to: DType, bytes: Uint8Array): Uint8Array {
  if (from === to) return bytes;
  if (!FLOATS.includes(from) || !FLOATS.includes(to)) {
    throw new ConfigError('DTYPE_CONVERSION', `cannot convert ${from} to ${to}: only float32/float16/bfloat16/float64 convert`);
  }
  const src = viewAs(from, bytes) as Float32Array | Float64Array | Uint16Array;
  const n = src.length;
  if (to === 'float32' && (from === 'float16' || from === 'bfloat16')) return widen16(from, src as Uint16Array);
  const read: (i: number) => number =
    from === 'float16' ? (i) => f16ToF32(src[i]!) : from === 'bfloat16' ? (i) => bf16ToF32(src[i]!) : (i) => src[i]!;
  let out: Float32Array | Float64Array | Uint16Array;
  if (to === 'float32') { out = new Float32Array(n); for (let i = 0; i < n; i++) out[i] = read(i); }
  else if (to === 'float64') { out = new Float64Array(n); for (let i = 0; i < n; i++) out[i] = read(i); }
  else if (to === 'float16') { out = new Uint16Array(n); for (let i = 0; i < n; i++) out[i] = f32ToF16(read(i)); }
  else { out = new Uint16Array(n); for (let i = 0; i < n; i++) out[i] = f32ToBf16(read(i)); }
  return new Uint8Array(out.buffer);
}

let F16_TABLE: Float32Array | undefined;

/** float16/bfloat16 -> float32 for whole arrays: a table lookup (f16) or a shift (bf16), the hot path of conversion. */
function widen16(from: 'float16' | 'bfloat16', src: Uint16Array): Uint8Array {
  const out = new Uint32Array(src.length);
  if (from === 'bfloat16') {
    for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
  } else {
    if (!F16_TABLE) {
      F16_TABLE = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16ToF32(h);
    }
    const table = new Uint32Array(F16_TABLE.buffer);
    for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  }
  return new Uint8Array(out.buffer);
}

/** A tensor that converts its source's dtype when read, so conversion streams. */
export function castTensor(t: Tensor, to: DType): Tensor {
  if (t.dtype === to) return t;
  return new LazyTensor(to, t.shape, () => convertFloatBytes(t.dtype, to, t.bytes()));
}

/** Reads any float tensor as float32 values. */
export function toFloat32(t: Tensor): Float32Array {
  return viewAs('float32', convertFloatBytes(t.dtype, 'float32', t.bytes())) as Float32Array;
}
