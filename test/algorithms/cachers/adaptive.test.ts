// The adaptive policies on given inputs. Expected decisions were printed by the reference code
// copied into Python (numpy, float64): TeaCache4FLUX/teacache_flux.py's accumulation and diffusers'
// FBCHeadBlockHook._should_compute_remaining_blocks (1 = compute).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompatibilityError, ConfigError } from '../../../src/errors.js';
import {
  FbCachePolicy, FBCACHE_DEFAULTS, TeaCachePolicy, TEACACHE_DEFAULTS, TEACACHE_FLUX_COEFFICIENTS, polyval, relativeL1,
  type Decision,
} from '../../../src/algorithms/cachers/policies/index.js';
import { bits, ctx } from './util.js';

test('relativeL1: mean|a - b| / mean|b|, over the kept reference', () => {
  assert.equal(relativeL1(new Float32Array([1.5, -2]), new Float32Array([1, -2])), 0.5 / 3);
  assert.equal(relativeL1(new Float32Array([1, 1]), new Float32Array([0, 0])), Infinity);
  assert.ok(Number.isNaN(relativeL1(new Float32Array(2), new Float32Array(2))));
  assert.throws(() => relativeL1(new Float32Array(2), new Float32Array(3)), (e: unknown) => e instanceof CompatibilityError && e.code === 'CACHE_SHAPE');
});

const F = (...v: number[]) => new Float32Array(v);

function fb(threshold: number, residuals: Float32Array[]): string {
  const p = new FbCachePolicy({ threshold });
  return bits(residuals.map((r, i) => p.decide(ctx(i, residuals.length), r)));
}

test('fbcache: compares against the last fully computed step, compute iff diff > threshold', () => {
  assert.deepEqual({ ...FBCACHE_DEFAULTS }, { threshold: 0.05 });
  // +3 % per step: each step is within 5 % of the previous, but not of the last computed one
  const drift = [1, 1.03, 1.06, 1.09, 1.12].map((x) => F(x, x));
  assert.equal(fb(0.05, drift), '10101');
  const seq = [F(1, -1), F(1.02, -1), F(1.04, -1), F(1.06, -1.02), F(1.1, -1.1), F(1.13, -1.1), F(1.13, -1.1), F(1.5, -1)];
  assert.equal(fb(0.05, seq), '10001001');
  assert.equal(fb(0.08, seq), '10001001');
  // threshold 0: an unchanged residual (diff 0, not > 0) still reuses, as in diffusers
  assert.equal(fb(0, seq), '11111101');
});

test('fbcache: per-branch state, reset(), distance reported, shape change refused', () => {
  const p = new FbCachePolicy();
  assert.equal(p.decide(ctx(0, 4, 'cond'), F(1, 1)), 'compute');
  assert.equal(p.lastDistance('cond'), undefined);
  assert.equal(p.decide(ctx(0, 4, 'uncond'), F(5, 5)), 'compute');
  assert.equal(p.decide(ctx(1, 4, 'cond'), F(1.01, 1.01)), 'reuse');
  assert.ok(Math.abs(p.lastDistance('cond')! - 0.01) < 1e-6);
  // uncond compares against its own kept residual (5, 5), not cond's
  assert.equal(p.decide(ctx(1, 4, 'uncond'), F(1.01, 1.01)), 'compute');
  p.reset();
  assert.equal(p.decide(ctx(0, 4, 'cond'), F(1.01, 1.01)), 'compute');
  assert.throws(() => p.decide(ctx(1, 4, 'cond'), F(1, 1, 1)), CompatibilityError);
  assert.throws(() => new FbCachePolicy({ threshold: -1 }), (e: unknown) => e instanceof ConfigError && e.key === 'threshold');
});

// relative L1 between consecutive modulated inputs (the first step has none)
const RELS = [0.1, 0.08, 0.05, 0.05, 0.04, 0.2, 0.03, 0.03, 0.02, 0.02, 0.1];
const TEA: [threshold: number, decisions: string, accumulated: number[]][] = [
  [0.25, '101010101011', [0.0, 0.2068473761000001, 0.0, 0.18050262494375, 0.0, 0.18390552556256, 0.0, 0.19263613888031006, 0.0, 0.20797828729616, 0.0, 0.0]],
  [0.4, '100100100101', [0.0, 0.2068473761000001, 0.3980644973329601, 0.0, 0.18050262494374997, 0.36440815050631, 0.0, 0.19263613888031006, 0.38527227776061995, 0.0, 0.20797828729616002, 0.0]],
  [0.6, '100010010011', [0.0, 0.2068473761000001, 0.3980644973329601, 0.5785671222767101, 0.0, 0.18390552556256, 0.4459007061625598, 0.0, 0.1926361388803099, 0.4006144261764699, 0.0, 0.0]],
];

test('teacache: FLUX coefficients and default threshold', () => {
  assert.deepEqual([...TEACACHE_DEFAULTS.coefficients], [498.651651, -283.781631, 55.8554382, -3.82021401, 0.264230861]);
  assert.equal(TEACACHE_DEFAULTS.threshold, 0.6);
  assert.equal(polyval(TEACACHE_FLUX_COEFFICIENTS, 0), 0.264230861);
  assert.ok(Math.abs(polyval(TEACACHE_FLUX_COEFFICIENTS, 0.2) - 0.26199518060000015) < 1e-12);
});

test('teacache: accumulation, skips and resets on a distance sequence match teacache_flux.py', () => {
  for (const [threshold, expected, accumulated] of TEA) {
    const p = new TeaCachePolicy({ threshold });
    const n = RELS.length + 1;
    const got: Decision[] = [];
    const acc: number[] = [];
    for (let i = 0; i < n; i++) {
      got.push(p.decideDistance(ctx(i, n), i === 0 ? undefined : RELS[i - 1]));
      acc.push(p.accumulated('cond'));
    }
    assert.equal(bits(got), expected, `threshold ${threshold}`);
    acc.forEach((a, i) => assert.ok(Math.abs(a - accumulated[i]!) < 1e-12, `threshold ${threshold} step ${i}: ${a} vs ${accumulated[i]}`));
  }
});

test('teacache: on tensors, the distance is between consecutive inputs, computed or not', () => {
  // inputs scaled by (1 + r) each step: consecutive relative L1 = r
  const base = [1, -2, 3, -4];
  let s = 1;
  const inputs = [0, ...RELS].map((r) => {
    s *= 1 + r;
    return Float32Array.from(base, (b) => b * s);
  });
  const p = new TeaCachePolicy({ threshold: 0.4 });
  assert.equal(bits(inputs.map((x, i) => p.decide(ctx(i, inputs.length), x))), '100100100101');
  assert.ok(Math.abs(p.lastDistance('cond')! - 0.1) < 1e-6);
});

test('teacache: first and last step compute whatever the threshold; branches and reset', () => {
  const p = new TeaCachePolicy({ threshold: 1e9 });
  assert.equal(bits([0, 1, 2, 3].map((i) => p.decideDistance(ctx(i, 4), i === 0 ? undefined : 0.01))), '1001');
  const q = new TeaCachePolicy({ threshold: 1e9 });
  q.decideDistance(ctx(0, 5, 'cond'), undefined);
  assert.equal(q.decideDistance(ctx(1, 5, 'cond'), 0.01), 'reuse');
  assert.equal(q.decide(ctx(1, 5, 'uncond'), F(1, 2)), 'compute'); // first uncond call
  assert.equal(q.decide(ctx(2, 5, 'uncond'), F(1, 2)), 'reuse');
  q.reset();
  assert.equal(q.accumulated('cond'), 0);
  assert.equal(q.decideDistance(ctx(0, 5, 'cond'), undefined), 'compute');
  assert.throws(() => new TeaCachePolicy({ coefficients: [] }), (e: unknown) => e instanceof ConfigError && e.key === 'coefficients');
});
