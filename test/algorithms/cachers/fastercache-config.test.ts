// fastercache as a SmashConfig entry: registered, validated (Pruna's snake_case, errors naming the
// key), its per-pipeline defaults (Pruna's FLUX settings), what it supports, and --explain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, CompatibilityError } from '../../../src/errors.js';
import { ALGORITHMS } from '../../../src/algorithms/registry.js';
import { fastercache, fasterCacheConfig } from '../../../src/algorithms/cachers/fastercache.js';
import { SmashConfig } from '../../../src/smash/config.js';
import { explainSteps, formatExplanation } from '../../../src/smash/explain.js';
import { fluxDenoiser, opCounts, sd3Denoiser, unetDenoiser } from '../denoisers.js';

test('fastercache: registered as a cacher; snake_case hyperparameters; bad values name the key', () => {
  assert.equal(ALGORITHMS.get('fastercache'), fastercache);
  const c = new SmashConfig({ fastercache: { interval: 3, unconditional_batch_skip_range: 4, alpha_low_frequency: 1.2 } });
  assert.deepEqual(c.toJSON().fastercache, {
    interval: 3, spatialAttentionTimestepSkipRange: null, attentionWeight: 0.5, unconditionalBatchSkipRange: 4,
    unconditionalBatchTimestepSkipRange: [-1, 641], lowFrequencyWeightUpdateTimestepRange: [99, 901], highFrequencyWeightUpdateTimestepRange: [-1, 301],
    alphaLowFrequency: 1.2, alphaHighFrequency: 1.1, isGuidanceDistilled: null,
  });
  const bad = (spec: Record<string, unknown>, key: string) => assert.throws(() => new SmashConfig({ fastercache: spec }), (e: unknown) => e instanceof ConfigError && e.key === key);
  bad({ interval: 6 }, 'fastercache.interval');
  bad({ interval: 0 }, 'fastercache.interval');
  bad({ unconditionalBatchSkipRange: 1.5 }, 'fastercache.unconditionalBatchSkipRange');
  bad({ spatialAttentionTimestepSkipRange: [1] }, 'fastercache.spatialAttentionTimestepSkipRange');
  bad({ threshold: 0.1 }, 'fastercache');
  assert.throws(() => new SmashConfig({ fastercache: {}, pab: {} }), (e: unknown) => e instanceof CompatibilityError && e.code === 'INCOMPATIBLE');
});

test('fastercache: Pruna\'s FLUX settings (range (-1, 961), guidance-distilled) by default on Flux, diffusers\' elsewhere', () => {
  const params = fastercache.schema.parse({});
  const flux = fasterCacheConfig(params, { denoiser: 'flux' });
  assert.deepEqual([flux.spatialAttentionTimestepSkipRange, flux.isGuidanceDistilled, flux.spatialAttentionBlockSkipRange], [[-1, 961], true, 2]);
  const sd3 = fasterCacheConfig(params, { denoiser: 'sd3' });
  assert.deepEqual([sd3.spatialAttentionTimestepSkipRange, sd3.isGuidanceDistilled], [[-1, 681], false]);
  const mine = fasterCacheConfig(fastercache.schema.parse({ spatialAttentionTimestepSkipRange: [0, 500], isGuidanceDistilled: false }), { denoiser: 'flux' });
  assert.deepEqual([mine.spatialAttentionTimestepSkipRange, mine.isGuidanceDistilled], [[0, 500], false]);
  assert.equal(fastercache.supports({ className: 'LatentConsistencyModelPipeline', denoiser: 'unet', components: [] }).ok, false);
  for (const [className, denoiser] of [['FluxPipeline', 'flux'], ['StableDiffusion3Pipeline', 'sd3'], ['StableDiffusionXLPipeline', 'unet']] as const) {
    assert.ok(fastercache.supports({ className, denoiser, components: [] }).ok, className);
  }
});

test('fastercache --explain: the attention modules of a transformer, none of a UNet; nothing changed', () => {
  const flux = fluxDenoiser().build();
  const ops = opCounts(flux);
  const target = { className: 'FluxPipeline', denoiser: 'flux', components: ['transformer'] } as const;
  const [step] = explainSteps(new SmashConfig({ fastercache: {} }), target, new Map([['transformer', flux]]));
  assert.deepEqual(opCounts(flux), ops);
  assert.ok(step!.touches.transformer!.includes('transformer_blocks.0.attn') && step!.touches.transformer!.some((p) => p.startsWith('single_transformer_blocks.')));
  assert.ok(step!.touches.transformer!.every((p) => /\.attn2?$/.test(p)));
  assert.match(formatExplanation([step!]), /^1\. fastercache \(cacher\): extrapolates self-attention/);
  const sd3 = explainSteps(new SmashConfig({ fastercache: {} }), { className: 'StableDiffusion3Pipeline', denoiser: 'sd3', components: ['transformer'] }, new Map([['transformer', sd3Denoiser().build()]]));
  assert.ok(sd3[0]!.touches.transformer!.length > 0);
  const unet = explainSteps(new SmashConfig({ fastercache: {} }), { className: 'StableDiffusionPipeline', denoiser: 'unet', components: ['unet'] }, new Map([['unet', unetDenoiser().build()]]));
  assert.deepEqual(unet[0]!.touches, {});
});
