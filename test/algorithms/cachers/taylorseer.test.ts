// TaylorSeer: diffusers' TaylorSeerCacheHook schedule and TaylorSeerState factor arithmetic
// (hooks/taylorseer_cache.py). Schedules and the quadratic forecasts below were printed by that
// code copied into Python (float64 numpy; 1 = compute).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, CompatibilityError } from '../../../src/errors.js';
import {
  TaylorSeerPolicy, TAYLORSEER_DEFAULTS, TaylorFactors, taylorExtrapolate, taylorSeerSchedule,
} from '../../../src/algorithms/cachers/policies/index.js';
import { bits, ctx, runSteps } from './util.js';

test('taylorseer: schedules match TaylorSeerCacheHook._measure_should_compute', () => {
  assert.deepEqual({ ...TAYLORSEER_DEFAULTS }, { interval: 5, startStep: 3, stopStep: null, order: 1 });
  const p = new TaylorSeerPolicy();
  assert.equal(runSteps(20, (c) => p.decide(c)), '11101000010000100001');
  assert.equal(bits(taylorSeerSchedule(10, { interval: 2, startStep: 2, stopStep: null, order: 1 })), '1101010101');
  const q = new TaylorSeerPolicy({ interval: 3, startStep: 2, stopStep: 9 });
  assert.equal(runSteps(12, (c) => q.decide(c)), '110100100111');
  // startStep 0: the reference skips step 0 (and then fails: nothing to predict from); here it computes
  assert.equal(bits(taylorSeerSchedule(6, { interval: 5, startStep: 0, stopStep: null, order: 1 })), '010000');
  const r = new TaylorSeerPolicy({ startStep: 0 });
  assert.equal(runSteps(6, (c) => r.decide(c)), '110000');
});

test('taylorseer: order 1 forecasts a linear sequence exactly; order 0 reuses', () => {
  const lin = (t: number) => new Float32Array([2 * t + 1, -0.5 * t]);
  const f1 = new TaylorFactors(1);
  f1.update(3, lin(3));
  assert.deepEqual([...f1.predict(5)], [...lin(3)]); // one full step: only factor 0
  f1.update(4, lin(4));
  f1.update(9, lin(9)); // uneven spacing: the divided difference uses the real step distance
  for (const t of [10, 11, 13]) assert.deepEqual([...f1.predict(t)], [...lin(t)]);
  const f0 = new TaylorFactors(0);
  f0.update(0, lin(0));
  f0.update(1, lin(1));
  assert.equal(f0.size, 1);
  assert.deepEqual([...f0.predict(3)], [...lin(1)]);
});

test('taylorseer: quadratic sequence forecasts match the reference arithmetic for orders 0-3', () => {
  const quad = (t: number) => new Float32Array([0.5 * t * t - 3 * t + 2, -t * t + 7]);
  const history = [0, 1, 2, 4].map((step) => ({ step, output: quad(step) })); // the default schedule's full steps
  const expected: Record<number, number[][]> = {
    0: [[-2.0, -9.0], [-2.0, -9.0], [-2.0, -9.0], [-2.0, -9.0]],
    1: [[-2.0, -15.0], [-2.0, -21.0], [-2.0, -27.0], [-2.0, -33.0]],
    2: [[-1.625, -15.75], [-0.5, -24.0], [1.375, -33.75], [4.0, -45.0]],
    3: [[-1.6458333333333333, -15.708333333333334], [-0.6666666666666666, -23.666666666666668], [0.8125, -32.625], [2.666666666666667, -42.333333333333336]],
  };
  for (const order of [0, 1, 2, 3]) {
    [5, 6, 7, 8].forEach((step, i) => {
      const got = taylorExtrapolate(history, order, step);
      expected[order]![i]!.forEach((v, k) => assert.ok(Math.abs(got[k]! - v) <= 1e-5 * Math.max(1, Math.abs(v)), `order ${order} step ${step}: ${got[k]} vs ${v}`));
    });
  }
  // order 2 is closer to the true quadratic than order 1 (backward differences: not exact)
  const truth = quad(7);
  const err = (o: number) => Math.abs(taylorExtrapolate(history, o, 7)[1]! - truth[1]!);
  assert.ok(err(2) < err(1));
});

test('taylorseer: branches are separate; misuse is refused', () => {
  const p = new TaylorSeerPolicy({ interval: 2, startStep: 1 });
  assert.equal(p.decide(ctx(0, 6, 'cond')), 'compute');
  assert.equal(p.decide(ctx(1, 6, 'cond')), 'reuse');
  assert.equal(p.decide(ctx(1, 6, 'uncond')), 'compute');
  p.reset();
  assert.equal(p.decide(ctx(0, 6, 'cond')), 'compute');
  const f = p.factors();
  assert.throws(() => f.predict(1), (e: unknown) => e instanceof ConfigError);
  f.update(2, new Float32Array(3));
  assert.throws(() => f.update(2, new Float32Array(3)), (e: unknown) => e instanceof ConfigError && e.code === 'CACHE_STEP_ORDER');
  assert.throws(() => f.update(3, new Float32Array(4)), CompatibilityError);
  assert.throws(() => new TaylorSeerPolicy({ order: -1 }), (e: unknown) => e instanceof ConfigError && e.key === 'order');
});
