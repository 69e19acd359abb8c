/** Fidelity metrics against a base picture. Images are float arrays in [0, 1]. */

/** Peak signal-to-noise ratio in dB for a peak of 1 (Infinity for identical images). */
export function psnrDb(image: ArrayLike<number>, base: ArrayLike<number>): number {
  if (image.length !== base.length || !image.length) throw new RangeError(`images differ in size: ${image.length} vs ${base.length}`);
  let se = 0;
  for (let i = 0; i < image.length; i++) {
    const d = image[i]! - base[i]!;
    se += d * d;
  }
  return se === 0 ? Infinity : 10 * Math.log10(image.length / se);
}
