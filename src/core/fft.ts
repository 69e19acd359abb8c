/**
 * The discrete Fourier transform of complex sequences of any length, in float64: radix-2
 * Cooley–Tukey for powers of two, Bluestein's chirp-z (a power-of-two convolution) otherwise, so
 * every latent size gets the exact DFT rather than a padded approximation. numpy's conventions:
 * the forward transform is unscaled, the inverse divides by n. A base-layer numeric helper with
 * no dependencies (FasterCache's low/high-frequency split is its first user).
 */

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** In-place radix-2 FFT; `n` = re.length must be a power of two. */
function radix2(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  const sign = inverse ? 1 : -1;
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    // twiddles from cos/sin of each angle (not a running product), so errors do not accumulate
    const wr = new Float64Array(half);
    const wi = new Float64Array(half);
    for (let k = 0; k < half; k++) {
      const a = (sign * 2 * Math.PI * k) / len;
      wr[k] = Math.cos(a);
      wi[k] = Math.sin(a);
    }
    for (let s = 0; s < n; s += len) {
      for (let k = 0; k < half; k++) {
        const p = s + k;
        const q = p + half;
        const tr = re[q]! * wr[k]! - im[q]! * wi[k]!;
        const ti = re[q]! * wi[k]! + im[q]! * wr[k]!;
        re[q] = re[p]! - tr;
        im[q] = im[p]! - ti;
        re[p] = re[p]! + tr;
        im[p] = im[p]! + ti;
      }
    }
  }
}

/** In-place DFT of any length by Bluestein's algorithm: X_k = w_k · Σ_j (x_j w_j) conj(w_{k−j}), w_k = e^{∓iπk²/n}. */
function bluestein(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  let m = 1;
  while (m < 2 * n - 1) m <<= 1;
  const sign = inverse ? 1 : -1;
  const cr = new Float64Array(n);
  const ci = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    // k² mod 2n keeps the angle small and exact for large k
    const a = (sign * Math.PI * ((k * k) % (2 * n))) / n;
    cr[k] = Math.cos(a);
    ci[k] = Math.sin(a);
  }
  const ar = new Float64Array(m);
  const ai = new Float64Array(m);
  const br = new Float64Array(m);
  const bi = new Float64Array(m);
  for (let k = 0; k < n; k++) {
    ar[k] = re[k]! * cr[k]! - im[k]! * ci[k]!;
    ai[k] = re[k]! * ci[k]! + im[k]! * cr[k]!;
  }
  br[0] = cr[0]!;
  bi[0] = -ci[0]!;
  for (let k = 1; k < n; k++) {
    br[k] = br[m - k] = cr[k]!;
    bi[k] = bi[m - k] = -ci[k]!;
  }
  radix2(ar, ai, false);
  radix2(br, bi, false);
  for (let k = 0; k < m; k++) {
    const r = ar[k]! * br[k]! - ai[k]! * bi[k]!;
    ai[k] = ar[k]! * bi[k]! + ai[k]! * br[k]!;
    ar[k] = r;
  }
  radix2(ar, ai, true);
  for (let k = 0; k < n; k++) {
    const r = ar[k]! / m;
    const i = ai[k]! / m;
    re[k] = r * cr[k]! - i * ci[k]!;
    im[k] = r * ci[k]! + i * cr[k]!;
  }
}

/** In-place DFT of the complex sequence (re, im) of any length; `inverse` divides by n. */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError(`fft: real and imaginary parts differ in length (${n} vs ${im.length})`);
  if (n <= 1) return;
  if (isPow2(n)) radix2(re, im, inverse);
  else bluestein(re, im, inverse);
  if (inverse) for (let k = 0; k < n; k++) { re[k] = re[k]! / n; im[k] = im[k]! / n; }
}

/**
 * In-place 2-D DFT of an h×w plane stored row-major in (re, im), over both axes (numpy's fft2 on
 * the last two dims); `inverse` divides by h·w.
 */
export function fft2(re: Float64Array, im: Float64Array, h: number, w: number, inverse = false): void {
  if (re.length !== h * w || im.length !== h * w) throw new RangeError(`fft2: a ${h}×${w} plane needs ${h * w} values, got ${re.length} and ${im.length}`);
  const rr = new Float64Array(w);
  const ri = new Float64Array(w);
  for (let y = 0; y < h; y++) {
    rr.set(re.subarray(y * w, (y + 1) * w));
    ri.set(im.subarray(y * w, (y + 1) * w));
    fft(rr, ri, inverse);
    re.set(rr, y * w);
    im.set(ri, y * w);
  }
  const cr = new Float64Array(h);
  const ci = new Float64Array(h);
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) { cr[y] = re[y * w + x]!; ci[y] = im[y * w + x]!; }
    fft(cr, ci, inverse);
    for (let y = 0; y < h; y++) { re[y * w + x] = cr[y]!; im[y * w + x] = ci[y]!; }
  }
}
