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
