/**
 * A small seeded random generator for initial latents and stochastic schedulers.
 *
 * - Bits: xoshiro128** (Blackman & Vigna), 32-bit state words, seeded from two SplitMix64
 *   outputs of the seed taken as a 64-bit integer (negative seeds wrap, two's complement).
 *   Pure integer math (`Math.imul`, shifts, BigInt when seeding), so the stream is the same on
 *   every platform.
 * - Uniforms: 53-bit doubles in [0, 1) from two 32-bit outputs (high 27 + 26 bits).
 * - Normals: Box–Muller on pairs, u1 in (0, 1]; both results of a pair are used, in order
 *   (cos then sin). V8 computes `Math.log/cos/sin` with its own fdlibm port, not the OS libm,
 *   so values are identical across operating systems for a given Node major version.
 *
 * It does not reproduce torch's generator; callers who need torch's exact noise pass it in.
 */
export class Generator {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  /** A pending second Box–Muller value. */
  private spare: number | null = null;

  /** `seed`: any integer in ±2^53 (fractions are truncated). */
  constructor(readonly seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Generator seed must be a finite integer, got ${seed}`);
    // SplitMix64 over the seed as a 64-bit integer: two outputs fill the four state words
    let x = BigInt.asUintN(64, BigInt(Math.trunc(seed)));
    const M = (1n << 64n) - 1n;
    const splitmix64 = () => {
      x = (x + 0x9e3779b97f4a7c15n) & M;
      let z = x;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
      return z ^ (z >> 31n);
    };
    const a = splitmix64();
    const b = splitmix64();
    this.s0 = Number(a & 0xffffffffn) | 0;
    this.s1 = Number(a >> 32n) | 0;
    this.s2 = Number(b & 0xffffffffn) | 0;
    this.s3 = Number(b >> 32n) | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const rotl = (v: number, k: number) => (v << k) | (v >>> (32 - k));
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** One standard normal value (float64). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log stays finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `n` standard normal values as float32. */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}

/** `n` standard normal float32 values from `generator`. */
export function randn(generator: Generator, n: number): Float32Array {
  return generator.randn(n);
}
