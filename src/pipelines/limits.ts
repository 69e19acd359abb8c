/**
 * Size limits checked before anything is allocated. Without them a 65536×65536 request spent
 * 17 s and 3 GB before onnxruntime failed, and a `sample_size` of 100000 gave an untyped
 * "Invalid typed array length".
 */
import { totalmem } from 'node:os';
import { ConfigError } from '../errors.js';

/** The largest image side accepted (4× what the largest released models draw). */
export const MAX_SIDE = 16384;

/** Throws TOO_LARGE when an image side exceeds MAX_SIDE. */
export function checkSide(key: 'width' | 'height', v: number, why = ''): void {
  if (v > MAX_SIDE) {
    throw new ConfigError('TOO_LARGE', `${key}: ${v} pixels is above the limit of ${MAX_SIDE}${why ? ` (${why})` : ''}`, key);
  }
}

/**
 * The memory a generation needs at its peak, roughly: the VAE decoder's full-resolution
 * activations (block_out_channels[0] channels, about three alive at once) dominate.
 */
export function estimateGenerationBytes(images: number, width: number, height: number, vaeConfig: Record<string, unknown>): number {
  const boc = Array.isArray(vaeConfig.block_out_channels) ? Number(vaeConfig.block_out_channels[0]) : 128;
  const channels = Number.isFinite(boc) && boc > 0 ? boc : 128;
  return images * width * height * 4 * (3 + 3 * channels);
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;

/** Throws TOO_LARGE when a generation would need more memory than the machine has. */
export function checkGenerationMemory(images: number, width: number, height: number, vaeConfig: Record<string, unknown>, total = totalmem()): void {
  const need = estimateGenerationBytes(images, width, height, vaeConfig);
  if (need > total) {
    throw new ConfigError(
      'TOO_LARGE',
      `${images} image${images > 1 ? 's' : ''} of ${width}×${height} need about ${gib(need)} of memory (the VAE decoder's activations); this machine has ${gib(total)}: ask for fewer or smaller images`,
      'width',
    );
  }
}
