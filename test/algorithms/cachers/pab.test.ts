// PAB: diffusers' PyramidAttentionBroadcastHook decision (hooks/pyramid_attention_broadcast.py).
// Expected strings were printed by that hook's condition, copied into Python and run over
// 20 DDIM-style timesteps [951, 901, ..., 1] (1 = compute).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/errors.js';
import { PabPolicy, PAB_DEFAULTS, type AttentionKind } from '../../../src/algorithms/cachers/policies/index.js';
import { runSteps, ctx } from './util.js';

const TIMESTEPS = Array.from({ length: 20 }, (_, i) => 951 - 50 * i);

function run(p: PabPolicy, kind: AttentionKind): string {
  return runSteps(TIMESTEPS.length, (c) => p.decide(c, kind), 'cond', TIMESTEPS);
}

test('pab: defaults skip every other self-attention inside (100, 800), never cross-attention', () => {
  assert.deepEqual(JSON.parse(JSON.stringify(PAB_DEFAULTS)), {
    spatialAttentionBlockSkipRange: 2,
    spatialAttentionTimestepSkipRange: [100, 800],
    crossAttentionBlockSkipRange: null,
    crossAttentionTimestepSkipRange: [100, 800],
  });
  const p = new PabPolicy();
  assert.equal(run(p, 'spatial'), '11111010101010101011');
  assert.equal(run(p, 'cross'), '11111111111111111111');
});

test('pab: separate intervals and ranges for self- and cross-attention', () => {
  const p = new PabPolicy({ spatialAttentionBlockSkipRange: 3, spatialAttentionTimestepSkipRange: [100, 950], crossAttentionBlockSkipRange: 6 });
  // asked interleaved, as a denoiser step asks both kinds: their counters do not mix
  const spatial: string[] = [];
  const cross: string[] = [];
  TIMESTEPS.forEach((t, i) => {
    spatial.push(p.decide(ctx(i, 20, 'cond', t), 'spatial') === 'compute' ? '1' : '0');
    cross.push(p.decide(ctx(i, 20, 'cond', t), 'cross') === 'compute' ? '1' : '0');
  });
  assert.equal(spatial.join(''), '10010010010010010011');
  assert.equal(cross.join(''), '11110010000010000011');
});

test('pab: branches keep their own iteration; reset() restarts them', () => {
  const p = new PabPolicy();
  const t = 500;
  assert.equal(p.decide(ctx(0, 4, 'cond', t), 'spatial'), 'compute');
  assert.equal(p.decide(ctx(1, 4, 'cond', t), 'spatial'), 'reuse');
  assert.equal(p.decide(ctx(1, 4, 'uncond', t), 'spatial'), 'compute'); // uncond's iteration 0
  assert.equal(p.decide(ctx(2, 4, 'uncond', t), 'spatial'), 'reuse');
  p.reset();
  assert.equal(p.decide(ctx(0, 4, 'cond', t), 'spatial'), 'compute');
  assert.equal(p.decide(ctx(1, 4, 'cond', t), 'spatial'), 'reuse');
});

test('pab: bad config is a typed error naming the key', () => {
  assert.throws(() => new PabPolicy({ crossAttentionBlockSkipRange: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'crossAttentionBlockSkipRange');
  assert.throws(() => new PabPolicy({ spatialAttentionTimestepSkipRange: [800, 100] }), (e: unknown) => e instanceof ConfigError && e.key === 'spatialAttentionTimestepSkipRange');
});
