import { test } from 'node:test';
import assert from 'node:assert/strict';
import { psnrDb } from '../../src/eval/metrics.js';

test('PSNR by hand: MSE 0.01 is 20 dB, identical is Infinity, sizes must match', () => {
  // four pixels off by 0.1: MSE 0.01, PSNR 10·log10(1 / 0.01) = 20 dB
  assert.equal(psnrDb([0.1, 0.2, 0.3, 0.4], [0, 0.1, 0.2, 0.3]).toFixed(6), (20).toFixed(6));
  // one pixel of four off by 0.5: MSE 0.0625, PSNR 12.0412 dB
  assert.equal(psnrDb([0.5, 0, 0, 0], [0, 0, 0, 0]).toFixed(4), '12.0412');
  assert.equal(psnrDb([0.3, 0.7], [0.3, 0.7]), Infinity);
  assert.throws(() => psnrDb([0], [0, 1]), RangeError);
});

import { readFileSync } from 'node:fs';
import { ssim, gaussianWindow } from '../../src/eval/ssim.js';
import { cmmd, mmd } from '../../src/eval/cmmd.js';
import { clipScore } from '../../src/eval/clip-score.js';
import { median, relativeL2 } from '../../src/eval/stats.js';

const REF = JSON.parse(readFileSync(new URL('./data/metrics-reference.json', import.meta.url), 'utf8')) as {
  ssim: { shape: [number, number, number]; image: number[]; base: number[]; value: number };
  cmmd: { reference: number[][]; generated: number[][]; value: number };
};

test('SSIM by hand: constant images give (2ab + C1) / (a² + b² + C1); identical images give 1', () => {
  const shape = { channels: 1, height: 12, width: 12 };
  const a = new Float32Array(144).fill(0.2);
  const b = new Float32Array(144).fill(0.6);
  // no variance: the structure term is C2 / C2 = 1, luminance (2·0.12 + 1e-4) / (0.04 + 0.36 + 1e-4)
  assert.ok(Math.abs(ssim(a, b, shape) - 0.2401 / 0.4001) < 1e-6, String(ssim(a, b, shape)));
  const noise = Float32Array.from({ length: 3 * 144 }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 1 * 0.5 + 0.5);
  assert.ok(Math.abs(ssim(noise, noise, { ...shape, channels: 3 }) - 1) < 1e-12);
  const sum = gaussianWindow().reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12);
  assert.throws(() => ssim(new Float32Array(100), new Float32Array(100), { channels: 1, height: 10, width: 10 }), /at least 11×11/);
  assert.throws(() => ssim(a, b.subarray(1), shape), RangeError);
});

test('SSIM matches the numpy reference of Wang et al. (valid Gaussian window) on a 3×16×13 picture', () => {
  const { shape, image, base, value } = REF.ssim;
  const got = ssim(image, base, { channels: shape[0], height: shape[1], width: shape[2] });
  assert.ok(Math.abs(got - value) < 1e-10, `${got} vs ${value}`);
});

test('CMMD by hand: two orthogonal unit embeddings are 1000·(2 − 2·exp(−1/100)) apart; a set against itself is 0', () => {
  // ‖x − y‖² = 2, γ = 1/(2·10²): k(x, y) = exp(−0.01), k(x, x) = k(y, y) = 1
  assert.ok(Math.abs(cmmd([[1, 0]], [[0, 3]]) - 1000 * (2 - 2 * Math.exp(-0.01))) < 1e-9);
  assert.ok(Math.abs(cmmd([[1, 2], [3, 4]], [[1, 2], [3, 4]])) < 1e-12);
  // unnormalized MMD keeps the scale: x = 0 and y = 10 are 100 apart, exp(−0.5)
  assert.ok(Math.abs(mmd([[0]], [[10]]) - 1000 * (2 - 2 * Math.exp(-0.5))) < 1e-9);
  assert.throws(() => mmd([], [[1]]), RangeError);
  assert.throws(() => mmd([[1, 2]], [[1]]), RangeError);
});

test('CMMD matches the numpy port of google-research cmmd/distance.py (sets of 4 and 3)', () => {
  const got = cmmd(REF.cmmd.reference, REF.cmmd.generated);
  assert.ok(Math.abs(got - REF.cmmd.value) < 1e-9, `${got} vs ${REF.cmmd.value}`);
});

test('CLIP score by hand: 100·max(cos, 0) averaged over the pairs', () => {
  // cos 45° = 0.7071…; opposite vectors count 0, not −100
  assert.ok(Math.abs(clipScore([[1, 0]], [[2, 2]]) - 100 * Math.SQRT1_2) < 1e-9);
  assert.equal(clipScore([[1, 0]], [[-1, 0]]), 0);
  assert.ok(Math.abs(clipScore([[1, 0], [0, 1]], [[1, 0], [-1, 0]]) - 50) < 1e-9);
  assert.throws(() => clipScore([[1]], []), RangeError);
});

test('relative L2 and median by hand', () => {
  // ‖(3, 4) − (0, 0)‖ against ‖(3, 0)‖… : a = (3, 4), b = (3, 0): ‖(0, 4)‖ / 3
  assert.ok(Math.abs(relativeL2([3, 4], [3, 0]) - 4 / 3) < 1e-12);
  assert.equal(relativeL2([1, 2], [1, 2]), 0);
  assert.equal(relativeL2([1], [0]), Infinity);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 10]), 3.5);
  assert.throws(() => median([]), RangeError);
});
