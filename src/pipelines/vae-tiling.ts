/**
 * Tiled VAE decoding, diffusers' AutoencoderKL.enable_tiling() / tiled_decode: the latents are
 * cut into overlapping tiles of tile_latent_min_size, each tile is decoded alone, and
 * neighbouring tiles are blended with linear ramps (blend_v, blend_h) over tile_overlap_factor
 * of a tile before being cropped and joined. The decoder's peak memory then depends on the tile
 * size, not the image size, at the price of a slightly different picture (every tile sees only
 * its own latents: the mid-block attention and the convolutions' borders differ).
 *
 * Only arithmetic on float tensors: the decoder is a callback.
 */
import { ConfigError } from '../errors.js';
import type { FloatTensor } from './image.js';

/** The `vaeTiling` option's object form; diffusers' names, defaults from the VAE's config. */
export interface VaeTilingOptions {
  /** pixels per tile side (diffusers' tile_sample_min_size; default the VAE's config sample_size) */
  tileSampleSize?: number;
  /** fraction of a tile its neighbours overlap and blend over (diffusers' tile_overlap_factor; default 0.25) */
  overlap?: number;
}

/** `true` for diffusers' defaults, an object to set them, `false`/absent for a plain decode. */
export type VaeTilingOption = boolean | VaeTilingOptions;

/** The resolved tiling of one VAE, in diffusers' terms. */
export interface VaeTiling {
  tileSampleMinSize: number;
  tileLatentMinSize: number;
  tileOverlapFactor: number;
}

export const DEFAULT_TILE_OVERLAP_FACTOR = 0.25;

function bad(key: string, message: string): ConfigError {
  return new ConfigError('BAD_OPTION', `${key}: ${message}`, key);
}

/**
 * Checks the option against the VAE (its config and downsampling `vaeScale`); null when tiling is off.
 * Rejects tilings whose crops would not add up to the image (diffusers would return a picture of
 * another size): the latent stride times `vaeScale` must equal the tile minus the blend extent.
 */
export function resolveVaeTiling(option: unknown, vaeConfig: Record<string, unknown>, vaeScale: number): VaeTiling | null {
  if (option === undefined || option === false) return null;
  if (option !== true && (typeof option !== 'object' || option === null || Array.isArray(option))) {
    throw bad('vaeTiling', `expected true, false or { tileSampleSize?, overlap? }, got ${JSON.stringify(option)}`);
  }
  const o = (option === true ? {} : option) as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'tileSampleSize' && k !== 'overlap') throw bad(`vaeTiling.${k}`, 'unknown option (known: tileSampleSize, overlap)');
  }
  let tileSampleMinSize: number;
  let tileLatentMinSize: number;
  if (o.tileSampleSize !== undefined) {
    const t = o.tileSampleSize;
    if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < vaeScale || t % vaeScale !== 0) {
      throw bad('vaeTiling.tileSampleSize', `expected a positive multiple of the VAE's downsampling ${vaeScale} (pixels per latent), got ${JSON.stringify(t)}`);
    }
    tileSampleMinSize = t;
    tileLatentMinSize = t / vaeScale;
  } else {
    // diffusers: tile_sample_min_size = config.sample_size (the first entry of a list),
    // tile_latent_min_size = int(sample_size / 2**(len(block_out_channels) - 1))
    const s = Array.isArray(vaeConfig.sample_size) ? vaeConfig.sample_size[0] : vaeConfig.sample_size;
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < vaeScale) {
      throw bad('vaeTiling.tileSampleSize', `the VAE config's sample_size (${JSON.stringify(vaeConfig.sample_size)}) gives no tile size: set tileSampleSize`);
    }
    tileSampleMinSize = s;
    tileLatentMinSize = Math.trunc(s / vaeScale);
  }
  const f = o.overlap ?? DEFAULT_TILE_OVERLAP_FACTOR;
  if (typeof f !== 'number' || !Number.isFinite(f) || f < 0 || f >= 1) {
    throw bad('vaeTiling.overlap', `expected a number in [0, 1), got ${JSON.stringify(f)}`);
  }
  const tiling = { tileSampleMinSize, tileLatentMinSize, tileOverlapFactor: f };
  const { stride, blendExtent, rowLimit } = tileSteps(tiling);
  if (stride < 1 || stride * vaeScale !== rowLimit) {
    throw bad(o.overlap !== undefined ? 'vaeTiling.overlap' : 'vaeTiling.tileSampleSize',
      `tiles of ${tileSampleMinSize} px (${tileLatentMinSize} latents) with overlap ${f} step ${stride} latents = ${stride * vaeScale} px ` +
      `but keep ${rowLimit} px each (${tileSampleMinSize} minus a blend of ${blendExtent}): the picture would not be ${vaeScale}× the latents; ` +
      `pick a tile size and overlap where int(latents × (1 − overlap)) × ${vaeScale} = tile − int(tile × overlap) (e.g. overlap 0.25 and a tile multiple of ${4 * vaeScale})`);
  }
  return tiling;
}

/** diffusers' overlap_size (latent stride), blend_extent and row_limit (pixels kept per tile). */
export function tileSteps(t: VaeTiling): { stride: number; blendExtent: number; rowLimit: number } {
  const stride = Math.trunc(t.tileLatentMinSize * (1 - t.tileOverlapFactor));
  const blendExtent = Math.trunc(t.tileSampleMinSize * t.tileOverlapFactor);
  return { stride, blendExtent, rowLimit: t.tileSampleMinSize - blendExtent };
}

/** diffusers' condition: tiles only when the latents exceed one tile in width or height. */
export function needsTiling(latentDims: readonly number[], t: VaeTiling): boolean {
  return latentDims[3]! > t.tileLatentMinSize || latentDims[2]! > t.tileLatentMinSize;
}

/** src[:, :, y0:y0+h, x0:x0+w] of an NCHW tensor into `dst`, an NCHW buffer [B, C, dstH, dstW] of as many planes, at (oy, ox). */
function copyWindow(src: FloatTensor, y0: number, x0: number, h: number, w: number, dst: Float32Array, dstH: number, dstW: number, oy: number, ox: number): void {
  const [B, C, H, W] = src.dims as [number, number, number, number];
  for (let p = 0; p < B * C; p++) {
    for (let y = 0; y < h; y++) {
      const from = (p * H + y0 + y) * W + x0;
      dst.set(src.data.subarray(from, from + w), (p * dstH + oy + y) * dstW + ox);
    }
  }
}

/** z[:, :, y0:y0+h, x0:x0+w] of an NCHW tensor, copied. */
function crop(z: FloatTensor, y0: number, x0: number, h: number, w: number): FloatTensor {
  const [B, C] = z.dims as [number, number];
  const out = new Float32Array(B * C * h * w);
  copyWindow(z, y0, x0, h, w, out, h, w, 0, 0);
  return { dims: [B, C, h, w], data: out };
}

/**
 * diffusers' blend_v, in place on b: its first rows fade in from a's last rows. The float32
 * arithmetic is torch's: a·(1 − y/e) + b·(y/e) with both weights rounded to float32.
 */
export function blendV(a: FloatTensor, b: FloatTensor, blendExtent: number): void {
  const [B, C, Ha, W] = a.dims as [number, number, number, number];
  const Hb = b.dims[2]!;
  const e = Math.min(Ha, Hb, blendExtent);
  for (let y = 0; y < e; y++) {
    const wa = Math.fround(1 - y / e);
    const wb = Math.fround(y / e);
    for (let p = 0; p < B * C; p++) {
      const ra = (p * Ha + Ha - e + y) * W;
      const rb = (p * Hb + y) * W;
      for (let x = 0; x < W; x++) b.data[rb + x] = Math.fround(Math.fround(a.data[ra + x]! * wa) + Math.fround(b.data[rb + x]! * wb));
    }
  }
}

/** diffusers' blend_h, in place on b: its first columns fade in from a's last columns. */
export function blendH(a: FloatTensor, b: FloatTensor, blendExtent: number): void {
  const [B, C, H, Wa] = a.dims as [number, number, number, number];
  const Wb = b.dims[3]!;
  const e = Math.min(Wa, Wb, blendExtent);
  for (let x = 0; x < e; x++) {
    const wa = Math.fround(1 - x / e);
    const wb = Math.fround(x / e);
    for (let p = 0; p < B * C; p++) {
      for (let y = 0; y < H; y++) {
        const ia = (p * H + y) * Wa + Wa - e + x;
        const ib = (p * H + y) * Wb + x;
        b.data[ib] = Math.fround(Math.fround(a.data[ia]! * wa) + Math.fround(b.data[ib]! * wb));
      }
    }
  }
}

/**
 * diffusers' tiled_decode of NCHW latents `z` (already scaled as the decoder takes them), each
 * tile through `decode` (latent tile -> sample tile, NCHW, vaeScale× larger). Tiles are decoded
 * one at a time, then blended in place in diffusers' row order (each tile with its
 * already-blended upper and left neighbours), cropped to row_limit and joined.
 */
export async function tiledDecode(z: FloatTensor, t: VaeTiling, decode: (tile: FloatTensor) => Promise<FloatTensor>): Promise<FloatTensor> {
  const [, , H, W] = z.dims as [number, number, number, number];
  const { stride, blendExtent, rowLimit } = tileSteps(t);
  const L = t.tileLatentMinSize;
  const starts = (n: number) => Array.from({ length: Math.ceil(n / stride) }, (_, k) => k * stride);
  const ys = starts(H);
  const xs = starts(W);
  // Tiles of one shape are decoded together (full tiles first, then the edges'): the order does
  // not change a tile's output, and a session bound to static shapes (ortCompile) is then
  // recreated once per shape instead of at every row's edge.
  const order = ys.flatMap((y, i) => xs.map((x, j) => ({ i, j, h: Math.min(L, H - y), w: Math.min(L, W - x) })));
  order.sort((a, b) => b.h - a.h || b.w - a.w || a.i - b.i || a.j - b.j);
  const rows: FloatTensor[][] = ys.map(() => new Array<FloatTensor>(xs.length));
  for (const o of order) rows[o.i]![o.j] = await decode(crop(z, ys[o.i]!, xs[o.j]!, o.h, o.w));
  // the joined size: every tile's crop (the last of a row or column may be smaller than row_limit)
  const first = rows[0]![0]!;
  const [B, C] = first.dims as [number, number];
  const heights = rows.map((r) => Math.min(rowLimit, r[0]!.dims[2]!));
  const widths = rows[0]!.map((c) => Math.min(rowLimit, c.dims[3]!));
  const outH = heights.reduce((a, b) => a + b, 0);
  const outW = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(B * C * outH * outW);
  let oy = 0;
  for (let i = 0; i < rows.length; i++) {
    let ox = 0;
    for (let j = 0; j < rows[i]!.length; j++) {
      const tile = rows[i]![j]!;
      if (i > 0) blendV(rows[i - 1]![j]!, tile, blendExtent);
      if (j > 0) blendH(rows[i]![j - 1]!, tile, blendExtent);
      copyWindow(tile, 0, 0, heights[i]!, widths[j]!, out, outH, outW, oy, ox);
      ox += widths[j]!;
    }
    oy += heights[i]!;
  }
  return { dims: [B, C, outH, outW], data: out };
}
