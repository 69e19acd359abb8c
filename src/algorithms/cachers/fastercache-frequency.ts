/**
 * FasterCache's CFG-cache arithmetic (diffusers' FasterCacheDenoiserHook and
 * `_split_low_high_freq`, from the FasterCache reference code): on a step that ran both halves,
 * the difference uncond − cond is split, per [H, W] plane of the BCHW prediction, into its low
 * frequencies (a disc of radius min(H, W) // 5 around the zero frequency of the 2-D FFT) and the
 * rest; on a step that ran only the conditional half, each part is multiplied by its weight (in
 * place, so the factors accumulate over consecutive skipped steps, as diffusers does) and
 *
 *   uncond ≈ ifft2(low(F cond) + Δlow + high(F cond) + Δhigh).real = cond + Δlow' + Δhigh'
 *
 * where Δ' are the deltas taken back to the spatial domain: the FFT is linear and the two masks
 * add up to the whole spectrum, so a skipped step needs no FFT at all (the masks are symmetric
 * under k → −k, so both parts are real).
 */
import { fft2 } from '../../core/fft.js';
import { CompatibilityError } from '../../errors.js';

/** diffusers' low-frequency mask, in unshifted FFT order (it builds it on the fftshift-ed spectrum). */
export function lowFrequencyMask(h: number, w: number): Uint8Array {
  const r = Math.floor(Math.min(h, w) / 5);
  const cy = Math.floor(h / 2);
  const cx = Math.floor(w / 2);
  const mask = new Uint8Array(h * w);
  for (let ky = 0; ky < h; ky++) {
    // fftshift puts frequency index k at (k + n // 2) mod n
    const dy = ((ky + cy) % h) - cy;
    for (let kx = 0; kx < w; kx++) {
      const dx = ((kx + cx) % w) - cx;
      mask[ky * w + kx] = dx * dx + dy * dy <= r * r ? 1 : 0;
    }
  }
  return mask;
}

/** The low-frequency part of each h×w plane of `x` (real, spatial); the high part is x − low. */
export function lowFrequencies(x: Float32Array, h: number, w: number): Float64Array {
  const n = h * w;
  const mask = lowFrequencyMask(h, w);
  const out = new Float64Array(x.length);
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let p = 0; p < x.length; p += n) {
    for (let k = 0; k < n; k++) { re[k] = x[p + k]!; im[k] = 0; }
    fft2(re, im, h, w);
    for (let k = 0; k < n; k++) if (!mask[k]) { re[k] = 0; im[k] = 0; }
    fft2(re, im, h, w, true);
    out.set(re, p);
  }
  return out;
}

/** The CFG-cache of one generation: the last measured uncond − cond, split by frequency. */
export class UnconditionalEstimate {
  #low?: Float64Array;
  #high?: Float64Array;
  #dims: readonly number[] = [];
  /** the product of the weights applied since the last store, per part */
  #weights = { low: 1, high: 1 };

  get ready(): boolean {
    return this.#low !== undefined;
  }

  /** A step that ran both halves: keeps the split of uncond − cond ([B, C, H, W] each). */
  store(uncond: Float32Array, cond: Float32Array, dims: readonly number[]): void {
    const [h, w] = planeDims(dims);
    if (uncond.length !== cond.length) throw new CompatibilityError('CACHE_SHAPE', `fastercache: unconditional and conditional predictions differ in size (${uncond.length} vs ${cond.length})`);
    const d = new Float32Array(cond.length);
    for (let i = 0; i < d.length; i++) d[i] = uncond[i]! - cond[i]!;
    const low = lowFrequencies(d, h, w);
    const high = new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) high[i] = d[i]! - low[i]!;
    this.#low = low;
    this.#high = high;
    this.#dims = [...dims];
    this.#weights = { low: 1, high: 1 };
  }

  /** A step that ran only the conditional half: the deltas are weighted (cumulatively) and added to `cond`. */
  rebuild(cond: Float32Array, dims: readonly number[], weights: { low: number; high: number }): Float32Array {
    if (!this.#low || !this.#high) throw new CompatibilityError('CACHE_STATE', 'fastercache: no unconditional prediction was kept before a step that skips it');
    if (dims.length !== this.#dims.length || dims.some((d, i) => d !== this.#dims[i])) {
      throw new CompatibilityError('CACHE_SHAPE', `fastercache: the conditional prediction is [${dims.join(', ')}], the kept delta [${this.#dims.join(', ')}]`);
    }
    this.#weights = { low: this.#weights.low * weights.low, high: this.#weights.high * weights.high };
    const { low: a, high: b } = this.#weights;
    const out = new Float32Array(cond.length);
    for (let i = 0; i < out.length; i++) out[i] = cond[i]! + a * this.#low[i]! + b * this.#high[i]!;
    return out;
  }

  reset(): void {
    this.#low = this.#high = undefined;
    this.#weights = { low: 1, high: 1 };
  }
}

function planeDims(dims: readonly number[]): [number, number] {
  if (dims.length !== 4) throw new CompatibilityError('CACHE_SHAPE', `fastercache: the CFG-cache splits [B, C, H, W] predictions by frequency; this one is [${dims.join(', ')}]`);
  return [dims[2]!, dims[3]!];
}
