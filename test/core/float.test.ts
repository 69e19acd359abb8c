import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/core/float.js';

test('f16 round trip of every finite half value is exact', () => {
  for (let h = 0; h < 0x10000; h++) {
    const e = (h >> 10) & 0x1f;
    if (e === 31) continue;
    assert.equal(f32ToF16(f16ToF32(h)), h === 0x8000 ? 0x8000 : h);
  }
});

test('f32 -> f16 rounds to nearest even', () => {
  // 1 + 2^-11 is exactly halfway between 1 and the next half (1 + 2^-10): ties to even (1)
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00);
  // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): goes up
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16(65520), 0x7c00); // overflows to inf
  assert.equal(f32ToF16(2 ** -25), 0); // halfway to the smallest subnormal: ties to even (0)
  assert.equal(f32ToF16(3 * 2 ** -25), 2); // 1.5 subnormal units: to even (2)
});

test('f32 -> bf16 rounds to nearest even and keeps NaN', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82); // tie → even (up)
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.equal(bf16ToF32(0x4049), 3.140625);
});
