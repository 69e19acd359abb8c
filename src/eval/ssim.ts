/**
 * SSIM as Wang et al. (2004) define it: an 11×11 Gaussian window with σ = 1.5, K1 = 0.01,
 * K2 = 0.03, dynamic range 1 (images in [0, 1]), statistics over the valid window positions
 * only (their reference `ssim_index.m` filters with 'valid'), population (biased) variances;
 * the mean of the SSIM map per channel, averaged over channels.
 */

export interface ImageShape {
  channels: number;
  height: number;
  width: number;
}

const K1 = 0.01;
const K2 = 0.03;

/** The normalized 1-D Gaussian whose outer product is the 2-D window. */
export function gaussianWindow(size = 11, sigma = 1.5): Float64Array {
  const w = new Float64Array(size);
  const c = (size - 1) / 2;
  let sum = 0;
  for (let i = 0; i < size; i++) sum += w[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  for (let i = 0; i < size; i++) w[i]! /= sum;
  return w;
}

/** Separable 'valid' filtering of one H×W plane. */
function filterValid(x: Float64Array, h: number, w: number, win: Float64Array): Float64Array {
  const k = win.length;
  const oh = h - k + 1;
  const ow = w - k + 1;
  const rows = new Float64Array(h * ow);
  for (let y = 0; y < h; y++) {
    for (let j = 0; j < ow; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += win[t]! * x[y * w + j + t]!;
      rows[y * ow + j] = s;
    }
  }
  const out = new Float64Array(oh * ow);
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += win[t]! * rows[(i + t) * ow + j]!;
      out[i * ow + j] = s;
    }
  }
  return out;
}

/** Mean SSIM of one channel plane pair. */
function ssimPlane(a: Float64Array, b: Float64Array, h: number, w: number, win: Float64Array): number {
  const c1 = K1 * K1;
  const c2 = K2 * K2;
  const n = h * w;
  const aa = new Float64Array(n);
  const bb = new Float64Array(n);
  const ab = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    aa[i] = a[i]! * a[i]!;
    bb[i] = b[i]! * b[i]!;
    ab[i] = a[i]! * b[i]!;
  }
  const mu1 = filterValid(a, h, w, win);
  const mu2 = filterValid(b, h, w, win);
  const s11 = filterValid(aa, h, w, win);
  const s22 = filterValid(bb, h, w, win);
  const s12 = filterValid(ab, h, w, win);
  let total = 0;
  for (let i = 0; i < mu1.length; i++) {
    const m1 = mu1[i]!;
    const m2 = mu2[i]!;
    const v1 = s11[i]! - m1 * m1;
    const v2 = s22[i]! - m2 * m2;
    const cov = s12[i]! - m1 * m2;
    total += ((2 * m1 * m2 + c1) * (2 * cov + c2)) / ((m1 * m1 + m2 * m2 + c1) * (v1 + v2 + c2));
  }
  return total / mu1.length;
}

/**
 * SSIM of two CHW images (one image of a [N, C, H, W] batch: pass its slice) in [0, 1].
 * Both sides must be at least the window's size (11 pixels).
 */
export function ssim(image: ArrayLike<number>, base: ArrayLike<number>, shape: ImageShape, windowSize = 11, sigma = 1.5): number {
  const { channels: c, height: h, width: w } = shape;
  const n = c * h * w;
  if (image.length !== n || base.length !== n) throw new RangeError(`images must hold ${c}×${h}×${w} = ${n} values (got ${image.length} and ${base.length})`);
  if (h < windowSize || w < windowSize) throw new RangeError(`SSIM needs images of at least ${windowSize}×${windowSize} pixels (got ${h}×${w})`);
  const win = gaussianWindow(windowSize, sigma);
  let sum = 0;
  for (let ch = 0; ch < c; ch++) {
    const a = Float64Array.from({ length: h * w }, (_, i) => image[ch * h * w + i]!);
    const b = Float64Array.from({ length: h * w }, (_, i) => base[ch * h * w + i]!);
    sum += ssimPlane(a, b, h, w, win);
  }
  return sum / c;
}
