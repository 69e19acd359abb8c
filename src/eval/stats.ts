/** Summary statistics of timed runs. */

export function median(values: readonly number[]): number {
  if (!values.length) throw new RangeError('median of no values');
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function mean(values: readonly number[]): number {
  if (!values.length) throw new RangeError('mean of no values');
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** ‖a − b‖ / ‖b‖ (0 for identical; Infinity when b is zero and a is not). */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length || !a.length) throw new RangeError(`tensors differ in size: ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}
