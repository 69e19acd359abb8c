/**
 * CLIPImageProcessor's preprocessing, as transformers does it on a picture: 8-bit pixels, resize
 * so the shortest side is `size` with PIL's bicubic filter (antialiased when shrinking, 8-bit
 * fixed-point arithmetic, horizontal pass then vertical), center crop to `crop`×`crop`, rescale
 * to [0, 1], normalize with the CLIP mean and std.
 */

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface ClipPreprocessOptions {
  /** shortest side after resizing (CLIPImageProcessor's `size.shortest_edge`, 224 for ViT-L/14) */
  size?: number;
  /** center crop side (`crop_size`, 224) */
  crop?: number;
  mean?: readonly number[];
  std?: readonly number[];
}

// PIL's Resample.c: 32-bit accumulators, 8-bit pixels, 2 guard bits
const PRECISION_BITS = 32 - 8 - 2;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** PIL's precomputed coefficients for one axis: per output pixel, a first input index and fixed-point weights. */
function coefficients(inSize: number, outSize: number): { first: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const first = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) truncates toward zero
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(xmax);
    let ww = 0;
    for (let x = 0; x < xmax; x++) ww += k[x] = bicubic((x + xmin - center + 0.5) / filterScale);
    const fixed = new Int32Array(xmax);
    for (let x = 0; x < xmax; x++) {
      const v = ww === 0 ? 0 : k[x]! / ww;
      fixed[x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    first[xx] = xmin;
    weights.push(fixed);
  }
  return { first, weights };
}

function clip8(acc: number): number {
  const v = Math.floor(acc / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Resizes one 8-bit plane (h×w) to oh×ow as PIL's `Image.resize(..., BICUBIC)`. */
export function resizeBicubic8(plane: Uint8Array, h: number, w: number, oh: number, ow: number): Uint8Array {
  let src = plane;
  let cw = w;
  if (ow !== w) {
    const { first, weights } = coefficients(w, ow);
    const out = new Uint8Array(h * ow);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < ow; x++) {
        const k = weights[x]!;
        let acc = 1 << (PRECISION_BITS - 1);
        for (let t = 0; t < k.length; t++) acc += src[y * w + first[x]! + t]! * k[t]!;
        out[y * ow + x] = clip8(acc);
      }
    }
    src = out;
    cw = ow;
  }
  if (oh !== h) {
    const { first, weights } = coefficients(h, oh);
    const out = new Uint8Array(oh * cw);
    for (let y = 0; y < oh; y++) {
      const k = weights[y]!;
      for (let x = 0; x < cw; x++) {
        let acc = 1 << (PRECISION_BITS - 1);
        for (let t = 0; t < k.length; t++) acc += src[(first[y]! + t) * cw + x]! * k[t]!;
        out[y * cw + x] = clip8(acc);
      }
    }
    src = out;
  }
  return src;
}

/** transformers' `get_resize_output_image_size` for `shortest_edge`: the long side scaled and truncated. */
export function shortestEdgeSize(h: number, w: number, size: number): { height: number; width: number } {
  if (h <= w) return { height: size, width: Math.trunc((size * w) / h) };
  return { height: Math.trunc((size * h) / w), width: size };
}

/**
 * A batch of pictures [N, 3, H, W] in [0, 1] -> CLIP's `pixel_values` [N, 3, crop, crop].
 * Pixels are rounded to 8 bits first, as a saved picture (and PIL) has them.
 */
export function clipPreprocess(images: Float32Array, dims: readonly number[], o: ClipPreprocessOptions = {}): { data: Float32Array; dims: number[] } {
  const [n, c, h, w] = dims as [number, number, number, number];
  if (dims.length !== 4 || c !== 3) throw new RangeError(`CLIP preprocessing takes [N, 3, H, W] pictures (got [${dims.join(', ')}])`);
  const size = o.size ?? 224;
  const crop = o.crop ?? 224;
  const mean = o.mean ?? CLIP_MEAN;
  const std = o.std ?? CLIP_STD;
  const r = shortestEdgeSize(h, w, size);
  if (r.height < crop || r.width < crop) throw new RangeError(`a ${r.height}×${r.width} resize cannot be center-cropped to ${crop}×${crop}`);
  const top = Math.trunc((r.height - crop) / 2);
  const left = Math.trunc((r.width - crop) / 2);
  const out = new Float32Array(n * 3 * crop * crop);
  for (let i = 0; i < n; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const off = (i * 3 + ch) * h * w;
      const plane = new Uint8Array(h * w);
      for (let p = 0; p < h * w; p++) plane[p] = Math.round(Math.min(1, Math.max(0, images[off + p]!)) * 255);
      const resized = resizeBicubic8(plane, h, w, r.height, r.width);
      const o2 = (i * 3 + ch) * crop * crop;
      for (let y = 0; y < crop; y++) {
        for (let x = 0; x < crop; x++) out[o2 + y * crop + x] = (resized[(y + top) * r.width + x + left]! / 255 - mean[ch]!) / std[ch]!;
      }
    }
  }
  return { data: out, dims: [n, 3, crop, crop] };
}
