// FORA: Pruna's fixed schedule (algorithms/fora.py get_cache_schedule). The expected strings were
// printed by that function, copied verbatim into Python (numpy not needed): 1 = compute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { ForaPolicy, FORA_DEFAULTS, foraSchedule } from '../../../src/algorithms/cachers/policies/index.js';
import { bits, ctx, runSteps } from './util.js';
import type { Decision } from '../../../src/algorithms/cachers/policies/index.js';

const REFERENCE: [startStep: number, interval: number, numSteps: number, schedule: string][] = [
  [2, 2, 10, '1110101010'],
  [2, 3, 28, '1110010010010010010010010010'],
  [0, 2, 9, '101010101'],
  [4, 5, 12, '111110000100'],
  [12, 2, 10, '1111111111'],
];

test('fora: defaults are interval 2, startStep 2, and give the reference list over 10 steps', () => {
  assert.deepEqual({ ...FORA_DEFAULTS }, { interval: 2, startStep: 2 });
  const p = new ForaPolicy();
  assert.equal(runSteps(10, (c) => p.decide(c)), '1110101010');
});

test('fora: schedule matches Pruna get_cache_schedule for several configs', () => {
  for (const [startStep, interval, n, expected] of REFERENCE) {
    assert.equal(bits(foraSchedule(n, { startStep, interval })), expected, `start ${startStep} interval ${interval} n ${n}`);
    const p = new ForaPolicy({ startStep, interval });
    assert.equal(runSteps(n, (c) => p.decide(c)), expected, `policy start ${startStep} interval ${interval} n ${n}`);
  }
});

test('fora: interval 1 always computes', () => {
  const p = new ForaPolicy({ interval: 1, startStep: 0 });
  assert.equal(runSteps(7, (c) => p.decide(c)), '1111111');
});

test('fora: branches keep separate state; a branch first seen late computes first', () => {
  const p = new ForaPolicy();
  // cond runs every step; uncond first appears at step 3, where the schedule says reuse
  const cond: Decision[] = [];
  for (let i = 0; i < 6; i++) {
    cond.push(p.decide(ctx(i, 6, 'cond')));
    if (i === 3) assert.equal(p.decide(ctx(i, 6, 'uncond')), 'compute');
    if (i === 5) assert.equal(p.decide(ctx(i, 6, 'uncond')), 'reuse');
  }
  assert.equal(bits(cond), '111010');
});

test('fora: steps must move forward until reset(); reset() starts a new generation', () => {
  const p = new ForaPolicy();
  for (let i = 0; i < 4; i++) p.decide(ctx(i, 10));
  assert.throws(() => p.decide(ctx(0, 10)), (e: unknown) => e instanceof ConfigError && e.code === 'CACHE_STEP_ORDER');
  p.reset();
  assert.equal(runSteps(10, (c) => p.decide(c)), '1110101010');
  // a step asked that is already past — e.g. two generations interleaved — is refused too
  assert.throws(() => p.decide(ctx(9, 10)), (e: unknown) => e instanceof ConfigError && e.code === 'CACHE_STEP_ORDER');
});

test('fora: bad config and bad context are typed errors naming the key', () => {
  assert.throws(() => new ForaPolicy({ interval: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'interval');
  assert.throws(() => new ForaPolicy({ startStep: 1.5 }), (e: unknown) => e instanceof ConfigError && e.key === 'startStep');
  const p = new ForaPolicy();
  assert.throws(() => p.decide(ctx(10, 10)), (e: unknown) => e instanceof ConfigError && e.key === 'step');
});
