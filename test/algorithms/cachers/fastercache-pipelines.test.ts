// FasterCache end to end on the fixture pipelines:
// - flux-tiny (no CFG): attention behind If nodes, extrapolated on skipped steps; against the plain
//   pipeline at interval 1 and against the overwrite reference (the 'where' lowering: attention
//   computed, then overwritten with the same extrapolation) when caching;
// - sd15-tiny (CFG, no transformer attention in diffusers' sense): the CFG-cache; against the
//   plain pipeline when the unconditional half always runs, and against a reference that runs
//   both halves on every step and overwrites the unconditional one with the rebuilt estimate;
//   batched and split CFG give the same picture.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import type { Model } from '../../../src/ir/graph.js';
import {
  FasterCacheDenoiser, UNCONDITIONAL, fastercache, fasterCacheConfig, fasterCacheTransform, rows,
} from '../../../src/algorithms/cachers/fastercache.js';
import type { Lowering } from '../../../src/algorithms/cachers/graph.js';
import { loadPipeline, type Pipeline } from '../../../src/pipelines/loader.js';
import type { CacheStepReport, DenoiseContext, Denoiser, DenoiserFeeds, PredictRequest } from '../../../src/pipelines/denoiser.js';
import type { GenerateOptions } from '../../../src/pipelines/pipeline.js';
import type { SmashTarget } from '../../../src/algorithms/algorithm.js';
import { fixture, relL2 } from '../../helpers.js';
import { withWrapper } from './util.js';
import { e2eOptions, randomPipelineWith, tempDir, tinyClip } from '../../pipelines/fixtures.js';

const tmp = tempDir('fastercache');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');

const wrap = (target: Pick<SmashTarget, 'denoiser'>, params: Record<string, unknown>) => (d: Denoiser) =>
  new FasterCacheDenoiser(d, fasterCacheConfig(fastercache.schema.parse(params), target));

/**
 * The CFG-cache's reference: a skipped step still runs both halves (the whole batch) and keeps
 * the conditional rows; the wrapper then overwrites the unconditional prediction as usual.
 */
class BothHalvesReference extends FasterCacheDenoiser {
  protected override async conditionalOnly(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest, extra: DenoiserFeeds, B: number) {
    const { r, all } = await this.call(feeds, ctx, request, extra, this.cutOutputs(), []);
    const condRows = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, rows(v, B, 2 * B)]));
    return { r: { sample: rows(r.sample, B, 2 * B), outputs: r.outputs }, all: condRows };
  }
}

const transformWith = (lowering: Lowering, seen: { ifs: number; wheres: number }) => (component: string, model: Model) => {
  if (component !== 'transformer' && component !== 'unet') return model;
  fasterCacheTransform(model, lowering);
  seen.ifs = model.graph.nodeList().filter((n) => n.opType === 'If').length;
  seen.wheres = model.graph.nodeList().filter((n) => n.opType === 'Where').length;
  return model;
};

const reusedCalls = (r: CacheStepReport[], part: string) => r.filter((e) => e.reused.includes(part)).length;

describe('fastercache on flux-tiny (attention extrapolation, no CFG)', () => {
  const opts = () => e2eOptions('e2e_flux_tiny_fox') as GenerateOptions;
  const flux = { denoiser: 'flux' } as const;
  let plain: Pipeline;
  before(async () => { plain = await loadPipeline(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1 }); });
  after(async () => plain?.release());

  test('interval 1 through the If graph = the plain image; interval 2 = the overwrite reference; the report names every module', async () => {
    const gated = { ifs: 0, wheres: 0 };
    const p = await loadPipeline(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1, transform: transformWith('if', gated) });
    const ref = await loadPipeline(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1, transform: transformWith('where', { ifs: 0, wheres: 0 }) });
    try {
      assert.ok(gated.ifs > 0, 'attention modules behind If nodes');
      assert.ok(p.denoiser.inputNames.some((n) => n.startsWith('cache_prev/')), 'the session is the transformed graph');
      const base = await plain.generate(opts());
      const always = wrap(flux, { interval: 1 })(p.denoiser);
      assert.ok(!always.inputNames.some((n) => n.startsWith('cache')), 'the loop does not see the cache inputs');
      const [a, b] = await withWrapper(p, always, async () => [await p.generate(opts()), await p.generate(opts())]);
      const e = relL2(a.images.data, base.images.data);
      console.log(`flux-tiny fastercache interval 1 vs plain: relL2 ${e.toExponential(2)} (${gated.ifs} If)`);
      assert.ok(e <= 1e-6, `relL2 ${e}`);
      assert.deepEqual(b.images.data, a.images.data);
      assert.equal(a.cache!.length, a.timings.stepsMs.length);
      assert.ok(a.cache!.every((s) => s.reused.length === 0 && s.computed.length === gated.ifs && s.branch === 'cond'));

      // Pruna's FLUX range (-1, 961): every step of this schedule but the first lies inside it
      const params = { interval: 2, attentionWeight: 0.5 };
      const [x, y] = await withWrapper(p, wrap(flux, params)(p.denoiser), async () => [await p.generate(opts()), await p.generate(opts())]);
      const r = await withWrapper(ref, wrap(flux, params)(ref.denoiser), () => ref.generate(opts()));
      const err = relL2(x.images.data, r.images.data);
      const drift = relL2(x.images.data, base.images.data);
      const reused = x.cache!.filter((s) => s.reused.length).length;
      console.log(`flux-tiny fastercache ${JSON.stringify(params)}: extrapolated ${reused}/${x.cache!.length} steps; vs overwrite reference relL2 ${err.toExponential(2)}; vs uncached ${drift.toExponential(2)}`);
      assert.deepEqual(y.images.data, x.images.data, 'the same seed twice gives the same image');
      assert.deepEqual(x.cache!.map((s) => s.reused), r.cache!.map((s) => s.reused), 'the same decisions as the reference');
      assert.ok(err < 1e-4, `relL2 vs reference ${err}`);
      assert.ok(reused > 0 && drift > 1e-5, `extrapolating changes the image (${reused} steps, drift ${drift})`);
      // per step: every attention module named once, computed or reused
      const modules = x.cache![0]!.computed;
      assert.ok(modules.length === gated.ifs && modules.includes('transformer_blocks.0.attn') && modules.some((m) => m.startsWith('single_transformer_blocks.')));
      for (const s of x.cache!) assert.deepEqual([...s.computed, ...s.reused].sort(), [...modules].sort());
      assert.equal(x.cache!.map((s) => (s.computed.length ? '1' : '0')).join(''), '101010'.slice(0, x.cache!.length));
    } finally {
      await Promise.all([p.release(), ref.release()]);
    }
  });
});

describe('fastercache on sd15-tiny (the CFG-cache)', () => {
  const opts = (o: Partial<GenerateOptions> = {}) => ({ ...e2eOptions('e2e_sd15_tiny_cat'), ...o }) as GenerateOptions;
  const unet = { denoiser: 'unet' } as const;
  const caching = { unconditionalBatchSkipRange: 2, unconditionalBatchTimestepSkipRange: [-1, 1001], lowFrequencyWeightUpdateTimestepRange: [-1, 1001], alphaLowFrequency: 1.2, highFrequencyWeightUpdateTimestepRange: [-1, 500] };
  let p: Pipeline;
  before(async () => { p = await loadPipeline(fixture('pipelines', 'sd15-tiny'), { cacheDir, threads: 1, transform: transformWith('if', { ifs: 0, wheres: 0 }) }); });
  after(async () => p?.release());

  test('a UNet graph is left as it is: no attention matches diffusers\' identifiers', () => {
    assert.ok(!p.denoiser.inputNames.some((n) => n.startsWith('cache')));
  });

  test('the unconditional half always run = the plain image; skipping it = the both-halves reference; split = batched', async () => {
    const base = await p.generate(opts());
    const always = await withWrapper(p, wrap(unet, { ...caching, unconditionalBatchSkipRange: 1 })(p.denoiser), () => p.generate(opts()));
    const e = relL2(always.images.data, base.images.data);
    console.log(`sd15-tiny fastercache uncond always run vs plain: relL2 ${e.toExponential(2)}`);
    assert.ok(e <= 1e-6, `relL2 ${e}`);
    assert.ok(always.cache!.every((s) => s.branch === 'cfg' && s.computed.includes(UNCONDITIONAL) && !s.reused.length));

    const inner = p.denoiser;
    const cached = wrap(unet, caching)(inner);
    const [x, y] = await withWrapper(p, cached, async () => [await p.generate(opts()), await p.generate(opts())]);
    const reference = new BothHalvesReference(inner, fasterCacheConfig(fastercache.schema.parse(caching), unet));
    const r = await withWrapper(p, reference, () => p.generate(opts()));
    const err = relL2(x.images.data, r.images.data);
    const drift = relL2(x.images.data, base.images.data);
    const skipped = reusedCalls(x.cache!, UNCONDITIONAL);
    console.log(`sd15-tiny fastercache ${JSON.stringify(caching)}: unconditional half rebuilt on ${skipped}/${x.cache!.length} steps; vs both-halves reference relL2 ${err.toExponential(2)}; vs uncached ${drift.toExponential(2)}`);
    assert.deepEqual(y.images.data, x.images.data, 'the same seed twice gives the same image');
    assert.equal(x.cache!.map((s) => (s.reused.includes(UNCONDITIONAL) ? '0' : '1')).join(''), '101010101'); // PNDM: 8 steps, 9 model calls
    assert.deepEqual(x.cache!.map((s) => s.reused), r.cache!.map((s) => s.reused));
    assert.ok(err < 1e-4, `relL2 vs reference ${err}`);
    assert.ok(drift > 1e-5, `rebuilding the unconditional half changes the image (${drift})`);

    // two calls per step: the conditional one first, the unconditional one rebuilt without a model run
    const split = await withWrapper(p, wrap(unet, caching)(inner), () => p.generate(opts({ cfgMode: 'split' })));
    assert.deepEqual(split.cache!.slice(0, 4).map((s) => [s.step, s.branch, s.computed, s.reused]), [
      [0, 'cond', [], []], [0, 'uncond', [UNCONDITIONAL], []], [1, 'cond', [], []], [1, 'uncond', [], [UNCONDITIONAL]],
    ]);
    const es = relL2(split.images.data, x.images.data);
    console.log(`sd15-tiny fastercache split vs batched: relL2 ${es.toExponential(2)}`);
    assert.ok(es < 1e-5, `split vs batched ${es}`);
  });
});

describe('fastercache on an SDXL pipeline (the CFG-cache with text_embeds and time_ids)', () => {
  const opts = (o: Partial<GenerateOptions> = {}) => ({ prompt: 'a red fox', negativePrompt: 'blurry', steps: 6, guidanceScale: 5, width: 32, height: 32, seed: 3, ...o }) as GenerateOptions;
  const caching = { unconditionalBatchSkipRange: 3, unconditionalBatchTimestepSkipRange: [-1, 1001], highFrequencyWeightUpdateTimestepRange: [-1, 1001] };
  let p: Pipeline;
  before(async () => {
    const dir = randomPipelineWith(join(tmp.dir, 'sdxl'), 'sdxl', ['unet', fixture('models', 'sdxl-unet-tiny')], fixture('models', 'sd-vae-tiny'), {
      text_encoder: tinyClip(32),
      text_encoder_2: tinyClip(32, 32),
    });
    p = await loadPipeline(dir, { cacheDir, threads: 1 });
  });
  after(async () => p?.release());

  test('always run = plain; rebuilt = the both-halves reference; split = batched', async () => {
    const base = await p.generate(opts());
    const unet = { denoiser: 'unet' } as const;
    const always = await withWrapper(p, wrap(unet, { ...caching, unconditionalBatchSkipRange: 1 })(p.denoiser), () => p.generate(opts()));
    assert.ok(relL2(always.images.data, base.images.data) <= 1e-6);
    const x = await withWrapper(p, wrap(unet, caching)(p.denoiser), () => p.generate(opts()));
    const r = await withWrapper(p, new BothHalvesReference(p.denoiser, fasterCacheConfig(fastercache.schema.parse(caching), unet)), () => p.generate(opts()));
    const s = await withWrapper(p, wrap(unet, caching)(p.denoiser), () => p.generate(opts({ cfgMode: 'split' })));
    const err = relL2(x.images.data, r.images.data);
    const drift = relL2(x.images.data, base.images.data);
    console.log(`sdxl fastercache ${JSON.stringify(caching)}: rebuilt ${reusedCalls(x.cache!, UNCONDITIONAL)}/${x.cache!.length}; vs reference ${err.toExponential(2)}; vs uncached ${drift.toExponential(2)}; split vs batched ${relL2(s.images.data, x.images.data).toExponential(2)}`);
    assert.equal(x.cache!.map((e) => (e.reused.includes(UNCONDITIONAL) ? '0' : '1')).join(''), '100100');
    assert.ok(err < 1e-4 && drift > 1e-5, `vs reference ${err}, vs uncached ${drift}`);
    assert.ok(relL2(s.images.data, x.images.data) < 1e-5);
  });
});
