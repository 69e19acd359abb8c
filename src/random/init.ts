/**
 * Random initial values of realistic scale for a checkpoint tensor, chosen by its name and
 * shape, generated fast and deterministically.
 *
 * - Bits: xoshiro128+ (32-bit state words, `Math.imul`-free inner loop), seeded per tensor from
 *   (seed, FNV-1a hash of the tensor name) through SplitMix32, so each tensor's values depend on
 *   the seed and its name only, not on the order tensors are made in.
 * - Values: uniform (never Box–Muller), mean and standard deviation by the rules of `initFor`.
 */
import { f32BitsToF16 } from '../core/float.js';
import type { DType } from '../core/dtype.js';
import { ConfigError } from '../errors.js';
import { sincos2dPosEmbed } from '../models/blocks/transformer-embeddings.js';

/** How one tensor is filled: uniform with this mean and standard deviation, or computed. */
export type Init =
  | { kind: 'uniform'; mean: number; std: number }
  | { kind: 'values'; values: () => Float32Array };

/** 32-bit FNV-1a of a string's UTF-16 code units. */
export function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function splitmix32(state: { x: number }): number {
  state.x = (state.x + 0x9e3779b9) | 0;
  let z = state.x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The four state words of a tensor's generator. `seed`: any integer in ±2^53. */
export function tensorState(seed: number, name: string): Uint32Array {
  const lo = Number(BigInt.asUintN(32, BigInt(Math.trunc(seed))));
  const hi = Number(BigInt.asUintN(32, BigInt(Math.trunc(seed)) >> 32n));
  const st = { x: (lo ^ Math.imul(hashName(name), 0x9e3779b1)) | 0 };
  const s = new Uint32Array(4);
  s[0] = splitmix32(st) ^ hi;
  s[1] = splitmix32(st);
  s[2] = splitmix32(st) ^ hashName(`${name}#`);
  s[3] = splitmix32(st);
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
  return s;
}

/**
 * Fills `out` with uniform values of the given mean and std (half-width std·√3), from the
 * generator state `s` (advanced in place).
 */
export function fillUniform(out: Float32Array, s: Uint32Array, mean: number, std: number, start = 0, end = out.length): void {
  let s0 = s[0]! | 0, s1 = s[1]! | 0, s2 = s[2]! | 0, s3 = s[3]! | 0;
  // (r >>> 8) is uniform on [0, 2^24): centre it and scale to [-a, a)
  const scale = (std * Math.sqrt(3)) / 8388608;
  for (let i = start; i < end; i++) {
    const r = (s0 + s3) >>> 8;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    out[i] = mean + (r - 8388608 + 0.5) * scale;
  }
  s[0] = s0; s[1] = s1; s[2] = s2; s[3] = s3;
}

export interface InitContext {
  /** the component's config, for the rules that depend on it */
  config: Record<string, unknown>;
  className: string;
}

const EMBEDDING = /(^|\.)(token_embedding|position_embedding|embed_tokens|shared|relative_attention_bias)\.weight$/;

/**
 * The initialisation rules (no layer is zero-initialised, so no output is trivially constant):
 * - Linear / Conv weights (rank ≥ 2): uniform, mean 0, std 1/√fan_in (fan_in = product of all
 *   dimensions but the first): activations keep their scale through the layers;
 *   T5's attention queries get a further 1/√d_kv (T5 has no score scaling; its init folds it in).
 * - Embedding tables: std 0.02 (CLIP token/position embeddings), 1.0 (T5 `shared`), 0.5 (T5
 *   relative attention bias).
 * - Norm weights (rank-1 `.weight`: LayerNorm, GroupNorm, RMSNorm scales): 1 ± noise of std 0.02.
 * - Biases: mean 0, std 0.02.
 * - SD3 `pos_embed.pos_embed`: the sincos grid diffusers stores (a buffer, not a parameter).
 */
export function initFor(name: string, shape: readonly number[], ctx: InitContext): Init {
  if (name === 'pos_embed.pos_embed' && ctx.className === 'SD3Transformer2DModel') {
    return { kind: 'values', values: () => sd3PosEmbed(shape, ctx.config) };
  }
  if (EMBEDDING.test(name)) {
    if (ctx.className === 'T5EncoderModel') return { kind: 'uniform', mean: 0, std: name.includes('relative_attention_bias') ? 0.5 : 1.0 };
    return { kind: 'uniform', mean: 0, std: 0.02 };
  }
  if (name.endsWith('.bias') || name === 'bias') return { kind: 'uniform', mean: 0, std: 0.02 };
  if (shape.length === 1) return { kind: 'uniform', mean: 1, std: 0.02 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  let std = 1 / Math.sqrt(Math.max(1, fanIn));
  if (ctx.className === 'T5EncoderModel' && /\.SelfAttention\.q\.weight$/.test(name)) {
    const dkv = typeof ctx.config.d_kv === 'number' ? ctx.config.d_kv : 64;
    std /= Math.sqrt(dkv);
  }
  return { kind: 'uniform', mean: 0, std };
}

/** diffusers' get_2d_sincos_pos_embed grid for PatchEmbed(pos_embed_max_size), [1, m², D]. */
function sd3PosEmbed(shape: readonly number[], config: Record<string, unknown>): Float32Array {
  const [, mm, d] = shape as [number, number, number];
  const m = Math.round(Math.sqrt(mm));
  const patch = typeof config.patch_size === 'number' ? config.patch_size : 2;
  const sample = typeof config.sample_size === 'number' ? config.sample_size : 128;
  return sincos2dPosEmbed(d, m, Math.floor(sample / patch));
}

const CHUNK = 1 << 16;
const scratch = new Float32Array(CHUNK);
const scratchU32 = new Uint32Array(scratch.buffer);

/** The dtypes create-random writes. */
export const RANDOM_DTYPES = ['float32', 'float16', 'bfloat16'] as const;
export type RandomDType = (typeof RANDOM_DTYPES)[number];

/** Generates the tensor's raw little-endian bytes in `dtype`. */
export function generate(init: Init, n: number, dtype: DType, seed: number, name: string): Uint8Array {
  if (!(RANDOM_DTYPES as readonly string[]).includes(dtype)) throw new ConfigError('BAD_DTYPE', `cannot generate ${dtype} weights (supported: ${RANDOM_DTYPES.join(', ')})`, 'dtype');
  const computed = init.kind === 'values' ? init.values() : undefined;
  const state = tensorState(seed, name);
  if (dtype === 'float32') {
    const out = computed ?? new Float32Array(n);
    if (!computed && init.kind === 'uniform') fillUniform(out, state, init.mean, init.std);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  const out = new Uint16Array(n);
  for (let start = 0; start < n; start += CHUNK) {
    const len = Math.min(CHUNK, n - start);
    if (computed) scratch.set(computed.subarray(start, start + len));
    else if (init.kind === 'uniform') fillUniform(scratch, state, init.mean, init.std, 0, len);
    if (dtype === 'bfloat16') {
      for (let i = 0; i < len; i++) {
        const b = scratchU32[i]!;
        out[start + i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
    } else {
      for (let i = 0; i < len; i++) {
        const b = scratchU32[i]!;
        const e = ((b >>> 23) & 0xff) - 112;
        if (e > 0 && e < 31) {
          // normal half: a mantissa carry rolls into the exponent (up to infinity), as IEEE rounds
          let r = (e << 10) | ((b >>> 13) & 0x3ff);
          const rem = b & 0x1fff;
          if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
          out[start + i] = ((b >>> 16) & 0x8000) | r;
        } else out[start + i] = f32BitsToF16(b);
      }
    }
  }
  return new Uint8Array(out.buffer);
}
