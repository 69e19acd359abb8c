// The FFT against the DFT's definition, summed directly in float64, for powers of two (radix-2)
// and every other length (Bluestein), forward and inverse, 1-D and 2-D.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fft, fft2 } from '../../src/core/fft.js';

function naiveDft(re: number[], im: number[], inverse: boolean): [number[], number[]] {
  const n = re.length;
  const s = inverse ? 1 : -1;
  const or: number[] = [];
  const oi: number[] = [];
  for (let k = 0; k < n; k++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < n; j++) {
      const t = (s * 2 * Math.PI * ((j * k) % n)) / n;
      a += re[j]! * Math.cos(t) - im[j]! * Math.sin(t);
      b += re[j]! * Math.sin(t) + im[j]! * Math.cos(t);
    }
    or.push(inverse ? a / n : a);
    oi.push(inverse ? b / n : b);
  }
  return [or, oi];
}

const signal = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 1.7 + i * 0.91) + 0.3 * Math.cos(i * i * 0.13 + seed));

function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

test('fft: equals the DFT for every length 1..40 and 64, 100, 128, forward and inverse', () => {
  for (const n of [...Array.from({ length: 40 }, (_, i) => i + 1), 64, 100, 128]) {
    for (const inverse of [false, true]) {
      const re = signal(n, 1);
      const im = signal(n, 2);
      const [er, ei] = naiveDft(re, im, inverse);
      const r = Float64Array.from(re);
      const i = Float64Array.from(im);
      fft(r, i, inverse);
      const tol = 1e-11 * n;
      assert.ok(maxErr(r, er) < tol && maxErr(i, ei) < tol, `n=${n} inverse=${inverse}: ${maxErr(r, er)} ${maxErr(i, ei)}`);
    }
  }
});

test('fft: the inverse undoes the forward transform; a length mismatch is refused', () => {
  for (const n of [12, 16, 97]) {
    const re = Float64Array.from(signal(n, 3));
    const im = new Float64Array(n);
    fft(re, im);
    fft(re, im, true);
    assert.ok(maxErr(re, signal(n, 3)) < 1e-12 && maxErr(im, new Float64Array(n)) < 1e-12);
  }
  assert.throws(() => fft(new Float64Array(4), new Float64Array(3)), RangeError);
});

test('fft2: equals the 2-D DFT on square and non-square planes', () => {
  for (const [h, w] of [[5, 6], [8, 8], [3, 16], [1, 7]] as const) {
    const x = signal(h * w, 4);
    const r = Float64Array.from(x);
    const i = new Float64Array(h * w);
    fft2(r, i, h, w);
    for (let ky = 0; ky < h; ky++) {
      for (let kx = 0; kx < w; kx++) {
        let a = 0;
        let b = 0;
        for (let y = 0; y < h; y++) {
          for (let xx = 0; xx < w; xx++) {
            const t = -2 * Math.PI * ((ky * y) / h + (kx * xx) / w);
            a += x[y * w + xx]! * Math.cos(t);
            b += x[y * w + xx]! * Math.sin(t);
          }
        }
        assert.ok(Math.abs(r[ky * w + kx]! - a) < 1e-10 && Math.abs(i[ky * w + kx]! - b) < 1e-10, `${h}x${w} at (${ky}, ${kx})`);
      }
    }
    fft2(r, i, h, w, true);
    assert.ok(maxErr(r, x) < 1e-12);
  }
  assert.throws(() => fft2(new Float64Array(6), new Float64Array(6), 2, 4), RangeError);
});
