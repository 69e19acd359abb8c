/**
 * CMMD (Jayasumana et al. 2024): the maximum mean discrepancy between two sets of CLIP image
 * embeddings under a Gaussian RBF kernel, σ = 10, scaled by 1000 — computed exactly as Pruna's
 * `CMMD._mmd` and google-research's `cmmd/distance.py`: the biased estimator (diagonals
 * included) on L2-normalized embeddings, `scale · (mean k(x,x') + mean k(y,y') − 2 mean k(x,y))`.
 */

export const CMMD_SIGMA = 10;
export const CMMD_SCALE = 1000;

/** Unit-length copies of embeddings (rows). */
export function l2Normalize(rows: readonly ArrayLike<number>[]): Float64Array[] {
  return rows.map((r) => {
    let n = 0;
    for (let i = 0; i < r.length; i++) n += r[i]! * r[i]!;
    n = Math.sqrt(n);
    return Float64Array.from({ length: r.length }, (_, i) => (n === 0 ? 0 : r[i]! / n));
  });
}

function meanKernel(x: readonly ArrayLike<number>[], y: readonly ArrayLike<number>[], gamma: number): number {
  let sum = 0;
  for (const a of x) {
    for (const b of y) {
      let d = 0;
      for (let i = 0; i < a.length; i++) {
        const t = a[i]! - b[i]!;
        d += t * t;
      }
      sum += Math.exp(-gamma * d);
    }
  }
  return sum / (x.length * y.length);
}

/** MMD² between embedding sets `x` and `y` (rows, already normalized as the caller wants). */
export function mmd(x: readonly ArrayLike<number>[], y: readonly ArrayLike<number>[], sigma = CMMD_SIGMA, scale = CMMD_SCALE): number {
  if (!x.length || !y.length) throw new RangeError('MMD needs at least one embedding on each side');
  const dim = x[0]!.length;
  for (const r of [...x, ...y]) if (r.length !== dim) throw new RangeError(`embeddings differ in size: ${r.length} vs ${dim}`);
  const gamma = 1 / (2 * sigma * sigma);
  return scale * (meanKernel(x, x, gamma) + meanKernel(y, y, gamma) - 2 * meanKernel(x, y, gamma));
}

/** CMMD of generated against reference image embeddings (normalized here, as Pruna does). */
export function cmmd(reference: readonly ArrayLike<number>[], generated: readonly ArrayLike<number>[]): number {
  return mmd(l2Normalize(reference), l2Normalize(generated));
}
