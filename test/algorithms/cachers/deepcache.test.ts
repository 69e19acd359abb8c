// DeepCache schedules. Uniform: DeepCacheSDHelper.is_skip_step computes iff
// (step - first step) % cache_interval == 0 — the lists below were printed with that rule in
// Python. Non-uniform: deepcache-quad-center.json holds what DeepCache's own
// sample_from_quad_center (DeepCache/sd/pipeline_stable_diffusion.py, copied verbatim, numpy
// 2.4.6) returns for 25 and 50 steps, every interval 2–5 (n_samples = ceil(steps / interval)) and
// every center 0..steps at pow 1.2; null rows are the reference's ValueError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../../src/errors.js';
import {
  DeepCachePolicy, DEEPCACHE_DEFAULTS, deepCacheSchedule, quadCenterSample,
} from '../../../src/algorithms/cachers/policies/index.js';
import { bits, ctx, runSteps } from './util.js';

test('deepcache: default interval 2, uniform, over 25 steps', () => {
  assert.deepEqual({ ...DEEPCACHE_DEFAULTS }, { interval: 2, uniform: true, pow: 1.2 });
  const p = new DeepCachePolicy();
  assert.equal(runSteps(25, (c) => p.decide(c)), '1010101010101010101010101');
});

test('deepcache: uniform interval 3 over 50 steps, interval 1 always computes', () => {
  const p = new DeepCachePolicy({ interval: 3 });
  assert.equal(runSteps(50, (c) => p.decide(c)), '10010010010010010010010010010010010010010010010010');
  assert.equal(bits(deepCacheSchedule(6, { interval: 1, uniform: false, center: 3, pow: 1.2 })), '111111');
});

test('deepcache: non-uniform slow steps match sample_from_quad_center for 25 and 50 steps', () => {
  const ref = JSON.parse(readFileSync(new URL('./deepcache-quad-center.json', import.meta.url), 'utf8')) as {
    rows: [n: number, k: number, center: number, indices: number[] | null, pow: number | null][];
  };
  assert.equal(ref.rows.length, 308);
  let failures = 0;
  for (const [n, k, center, indices, pow] of ref.rows) {
    if (indices === null) {
      assert.throws(() => quadCenterSample(n, k, center, 1.2), (e: unknown) => e instanceof ConfigError && e.key === 'center');
      failures++;
      continue;
    }
    const got = quadCenterSample(n, k, center, 1.2);
    assert.deepEqual(got.indices, indices, `n ${n} samples ${k} center ${center}`);
    assert.equal(got.pow, pow, `n ${n} samples ${k} center ${center}`);
  }
  assert.equal(failures, 1); // 50 steps, 25 samples, center 25
});

test('deepcache: non-uniform policy over 50 steps, interval 2, center 15', () => {
  // sample_from_quad_center(50, 25, 15, 1.2) → [0, 2, 4, 6, 8, 10, 12, 13, 15, 16, 18, 19, 21, 23, 25, 27, 29, 31, 33, 36, 38, 40, 42, 45, 47]
  const slow = new Set([0, 2, 4, 6, 8, 10, 12, 13, 15, 16, 18, 19, 21, 23, 25, 27, 29, 31, 33, 36, 38, 40, 42, 45, 47]);
  const expected = Array.from({ length: 50 }, (_, i) => (slow.has(i) ? '1' : '0')).join('');
  const p = new DeepCachePolicy({ uniform: false, center: 15 });
  assert.equal(runSteps(50, (c) => p.decide(c)), expected);
  // 25 steps around 10: pow had to drop to 1.18 to find 13 distinct slow steps
  assert.deepEqual(quadCenterSample(25, 13, 10, 1.2), { indices: [0, 3, 4, 6, 8, 10, 11, 12, 14, 16, 18, 20, 22], pow: 1.18 });
});

test('deepcache: branches are separate, reset() restarts, config errors name the key', () => {
  const p = new DeepCachePolicy();
  assert.equal(p.decide(ctx(0, 4, 'cond')), 'compute');
  assert.equal(p.decide(ctx(1, 4, 'cond')), 'reuse');
  assert.equal(p.decide(ctx(1, 4, 'uncond')), 'compute'); // first call on uncond
  assert.equal(p.decide(ctx(3, 4, 'uncond')), 'reuse');
  assert.throws(() => p.decide(ctx(1, 4, 'cond')), (e: unknown) => e instanceof ConfigError && e.code === 'CACHE_STEP_ORDER');
  p.reset();
  assert.equal(p.decide(ctx(0, 4, 'cond')), 'compute');
  assert.throws(() => new DeepCachePolicy({ uniform: false }), (e: unknown) => e instanceof ConfigError && e.key === 'center');
  assert.throws(() => new DeepCachePolicy({ uniform: false, center: 5, pow: 1 }), (e: unknown) => e instanceof ConfigError && e.key === 'pow');
  assert.throws(() => new DeepCachePolicy({ interval: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'interval');
  // a center no power can serve is refused when the schedule is built, naming the key
  const bad = new DeepCachePolicy({ uniform: false, center: 25 });
  assert.throws(() => bad.decide(ctx(0, 50)), (e: unknown) => e instanceof ConfigError && e.key === 'center');
});
