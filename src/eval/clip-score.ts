/**
 * CLIP score (Hessel et al. 2021, as torchmetrics' `clip_score` that Pruna uses):
 * 100 · max(cos(image embedding, text embedding), 0), averaged over the pairs.
 */
import { l2Normalize } from './cmmd.js';

export function clipScore(imageEmbeds: readonly ArrayLike<number>[], textEmbeds: readonly ArrayLike<number>[]): number {
  if (imageEmbeds.length !== textEmbeds.length || !imageEmbeds.length) {
    throw new RangeError(`CLIP score pairs one text per image (got ${imageEmbeds.length} images and ${textEmbeds.length} texts)`);
  }
  const img = l2Normalize(imageEmbeds);
  const txt = l2Normalize(textEmbeds);
  let sum = 0;
  for (let k = 0; k < img.length; k++) {
    const a = img[k]!;
    const b = txt[k]!;
    if (a.length !== b.length) throw new RangeError(`image and text embeddings differ in size: ${a.length} vs ${b.length}`);
    let dot = 0;
    for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
    sum += 100 * Math.max(dot, 0);
  }
  return sum / img.length;
}
