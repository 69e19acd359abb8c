// FasterCache: the CFG-cache and attention schedules of diffusers' FasterCacheDenoiserHook and
// FasterCacheBlockHook (hooks/faster_cache.py). Expected strings were printed by diffusers' own
// hooks driven with batched CFG (test/fixtures/fastercache/make_schedules.py: the block sees batch
// 1 instead of 2 when the denoiser skipped the unconditional half), over 20 timesteps
// [951, 901, ..., 1] (1 = compute).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, CompatibilityError } from '../../../src/errors.js';
import {
  FasterCachePolicy, FASTERCACHE_DEFAULTS, extrapolateAttention, type FasterCacheConfig, type GuidanceBranch,
} from '../../../src/algorithms/cachers/policies/index.js';

const TIMESTEPS = Array.from({ length: 20 }, (_, i) => 951 - 50 * i);

function run(config: Partial<FasterCacheConfig>, timesteps: number[], branch: GuidanceBranch = 'cfg'): [string, string] {
  const p = new FasterCachePolicy(config);
  let u = '';
  let a = '';
  timesteps.forEach((timestep, step) => {
    const numSteps = timesteps.length;
    const uncond = p.decideUnconditional({ step, numSteps, timestep });
    const att = p.decideAttention({ step, numSteps, timestep, branch }, uncond === 'reuse');
    u += uncond === 'compute' ? '1' : '0';
    a += att === 'compute' ? '1' : '0';
  });
  return [u, a];
}

test('fastercache: defaults are FasterCacheConfig\'s', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(FASTERCACHE_DEFAULTS)), {
    spatialAttentionBlockSkipRange: 2,
    spatialAttentionTimestepSkipRange: [-1, 681],
    lowFrequencyWeightUpdateTimestepRange: [99, 901],
    highFrequencyWeightUpdateTimestepRange: [-1, 301],
    alphaLowFrequency: 1.1,
    alphaHighFrequency: 1.1,
    unconditionalBatchSkipRange: 5,
    unconditionalBatchTimestepSkipRange: [-1, 641],
    attentionWeight: 0.5,
    isGuidanceDistilled: false,
  });
});

test('fastercache: CFG-cache and attention schedules with CFG match the reference hooks', () => {
  assert.deepEqual(run({}, TIMESTEPS), ['11111110001000010000', '11111110101010111010']);
  assert.deepEqual(
    run({ unconditionalBatchSkipRange: 3, spatialAttentionBlockSkipRange: 3, spatialAttentionTimestepSkipRange: [-1, 961] }, TIMESTEPS),
    ['11111110010010010010', '11111110010010010010'],
  );
  // the conditional call of separate branches follows the same attention schedule
  assert.deepEqual(run({}, TIMESTEPS, 'cond'), ['11111110001000010000', '11111110101010111010']);
  // an unconditional call always computes its attention: only conditional outputs are kept
  assert.equal(run({}, TIMESTEPS, 'uncond')[1], '11111111111111111111');
});

test('fastercache: guidance-distilled (Pruna FLUX settings) never skips the unconditional half; first step computes', () => {
  const flux = { isGuidanceDistilled: true, spatialAttentionTimestepSkipRange: [-1, 961] as const };
  assert.deepEqual(run(flux, [1000, ...TIMESTEPS.slice(0, 19)]), ['11111111111111111111', '10101010101010101010']);
  // starting inside the range the reference hook would read an empty cache at step 0; here it computes
  assert.deepEqual(run(flux, TIMESTEPS), ['11111111111111111111', '10101010101010101010']);
});

test('fastercache: frequency weights by timestep range, extrapolation arithmetic', () => {
  const p = new FasterCachePolicy();
  assert.deepEqual(p.frequencyWeights(950), { low: 1, high: 1 });
  assert.deepEqual(p.frequencyWeights(500), { low: 1.1, high: 1 });
  assert.deepEqual(p.frequencyWeights(200), { low: 1.1, high: 1.1 });
  assert.deepEqual(p.frequencyWeights(50), { low: 1, high: 1.1 });
  assert.deepEqual(p.frequencyWeights(99), { low: 1, high: 1.1 }); // open interval
  const out = extrapolateAttention(new Float32Array([1, 2, -1]), new Float32Array([3, 2, 1]), 0.5);
  assert.deepEqual([...out], [4, 2, 2]);
  assert.throws(() => extrapolateAttention(new Float32Array(2), new Float32Array(3), 0.5), CompatibilityError);
});

test('fastercache: reset() restarts both counters; bad config names the key', () => {
  const p = new FasterCachePolicy();
  const step = (i: number) => ({ step: i, numSteps: 4, timestep: 500 });
  assert.equal(p.decideUnconditional(step(0)), 'compute');
  assert.equal(p.decideUnconditional(step(1)), 'reuse');
  assert.equal(p.decideAttention({ ...step(0), branch: 'cond' }, false), 'compute');
  assert.equal(p.decideAttention({ ...step(1), branch: 'cond' }, true), 'reuse');
  p.reset();
  assert.equal(p.decideUnconditional(step(0)), 'compute');
  assert.equal(p.decideAttention({ ...step(0), branch: 'cond' }, true), 'compute');
  assert.throws(() => p.decideUnconditional(step(0)), (e: unknown) => e instanceof ConfigError && e.code === 'CACHE_STEP_ORDER');
  assert.throws(() => new FasterCachePolicy({ unconditionalBatchSkipRange: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'unconditionalBatchSkipRange');
  assert.throws(() => new FasterCachePolicy({ attentionWeight: NaN }), (e: unknown) => e instanceof ConfigError && e.key === 'attentionWeight');
});
