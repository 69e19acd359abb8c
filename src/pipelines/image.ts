/** Images: float NCHW in [0,1] (what pipelines return) <-> PNG. */
import { readFileSync, writeSync } from 'node:fs';
import { PNG } from 'pngjs';
import { ConfigError } from '../errors.js';
import { atomicWrite } from '../tensors/atomic.js';

/** A float32 tensor: row-major data with its shape. */
export interface FloatTensor {
  dims: readonly number[];
  data: Float32Array;
}

/** VAE output in [-1,1] -> [0,1], clamped (diffusers' VaeImageProcessor.postprocess, denormalize). */
export function denormalize(sample: Float32Array): Float32Array {
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) {
    const v = Math.fround(Math.fround(sample[i]! / 2) + 0.5);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return out;
}

/**
 * Image `index` of a float [N,C,H,W] batch in [0,1] as 8-bit RGBA, rounded as diffusers'
 * numpy_to_pil does (`(x * 255).round()`). One channel is grey; alpha is opaque.
 */
export function toRgba(images: FloatTensor, index = 0): { width: number; height: number; data: Buffer } {
  const [n, c, h, w] = images.dims as [number, number, number, number];
  if (images.dims.length !== 4 || index < 0 || index >= n || (c !== 3 && c !== 1)) {
    throw new ConfigError('IMAGE_SHAPE', `expected images [N,3,H,W] and an index below N, got [${images.dims.join(',')}] and ${index}`, 'images');
  }
  const plane = h * w;
  const base = index * c * plane;
  const data = Buffer.alloc(plane * 4);
  const q = (x: number) => {
    const v = Math.fround(x * 255);
    const f = Math.floor(v);
    const r = v - f > 0.5 || (v - f === 0.5 && f % 2 === 1) ? f + 1 : f; // numpy rounds half to even
    return r < 0 ? 0 : r > 255 ? 255 : r;
  };
  for (let p = 0; p < plane; p++) {
    const r = images.data[base + p]!;
    data[p * 4] = q(r);
    data[p * 4 + 1] = q(c === 3 ? images.data[base + plane + p]! : r);
    data[p * 4 + 2] = q(c === 3 ? images.data[base + 2 * plane + p]! : r);
    data[p * 4 + 3] = 255;
  }
  return { width: w, height: h, data };
}

/** PNG bytes of image `index` (RGB, 8 bits). */
export function encodePng(images: FloatTensor, index = 0): Buffer {
  const { width, height, data } = toRgba(images, index);
  const png = new PNG({ width, height, colorType: 2, inputColorType: 6, inputHasAlpha: true });
  data.copy(png.data);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 6, inputHasAlpha: true });
}

/** Writes image `index` as a PNG file, atomically. */
export function writePng(path: string, images: FloatTensor, index = 0): void {
  const bytes = encodePng(images, index);
  atomicWrite(path, (fd) => {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
  });
}

/** Reads a PNG as float [1,3,H,W] in [0,1]. */
export function readPng(path: string): FloatTensor {
  const png = PNG.sync.read(readFileSync(path));
  const { width: w, height: h } = png;
  const plane = w * h;
  const data = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let ch = 0; ch < 3; ch++) data[ch * plane + p] = png.data[p * 4 + ch]! / 255;
  return { dims: [1, 3, h, w], data };
}
