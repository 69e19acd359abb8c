// The cachers end to end on the fixture pipelines: the If-transformed graph against (1) the plain
// pipeline with an always-compute policy, and (2) a reference that computes every part in full
// and overwrites what leaves it with the kept values (the 'where' lowering of the same cut),
// driven by the same wrapper, so the surgery skips exactly what the decisions say.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { allNodes, type Model } from '../../../src/ir/graph.js';
import { fora, foraTransform } from '../../../src/algorithms/cachers/fora.js';
import { fbcache, fbCacheTransform } from '../../../src/algorithms/cachers/fbcache.js';
import { teacache, teaCacheTransform } from '../../../src/algorithms/cachers/teacache.js';
import { taylorseer } from '../../../src/algorithms/cachers/taylorseer.js';
import { deepcache, deepCacheModules, deepCacheTransform } from '../../../src/algorithms/cachers/deepcache.js';
import { pab, pabTransform } from '../../../src/algorithms/cachers/pab.js';
import type { Lowering } from '../../../src/algorithms/cachers/graph.js';
import { FbCachePolicy, TeaCachePolicy } from '../../../src/algorithms/cachers/policies/index.js';
import { loadPipeline, type Pipeline } from '../../../src/pipelines/loader.js';
import type { CacheStepReport, Denoiser } from '../../../src/pipelines/denoiser.js';
import { loadModel } from '../../../src/ir/model-file.js';
import type { GenerateOptions, GenerateResult } from '../../../src/pipelines/pipeline.js';
import { fixture, relL2 } from '../../helpers.js';
import { withWrapper } from './util.js';
import { e2eOptions, tempDir } from '../../pipelines/fixtures.js';

const tmp = tempDir('cachers');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');

interface Case {
  name: string;
  transform: (m: Model, lowering: Lowering) => Model;
  /** the wrapper at the given hyperparameters */
  wrap: (d: Denoiser, params: Record<string, unknown>) => Denoiser;
  always: Record<string, unknown>;
  caching: Record<string, unknown>;
}

const target = { className: 'FluxPipeline', denoiser: 'flux', components: [] } as const;
const wrapWith = (algo: typeof fora | typeof fbcache | typeof teacache | typeof taylorseer | typeof deepcache | typeof pab) => (d: Denoiser, params: Record<string, unknown>) =>
  algo.apply(algo.schema.parse(params) as never, target).wrapDenoiser!(d);

const CASES: Case[] = [
  { name: 'fora', transform: (m, l) => foraTransform(m, l), wrap: wrapWith(fora), always: { interval: 1 }, caching: { interval: 2, startStep: 1 } },
  { name: 'taylorseer', transform: (m, l) => foraTransform(m, l), wrap: wrapWith(taylorseer), always: { interval: 1 }, caching: { interval: 2, startStep: 2, order: 1 } },
  { name: 'fbcache', transform: (m, l) => fbCacheTransform(m, l), wrap: wrapWith(fbcache), always: { threshold: 0 }, caching: { threshold: 0.05 } },
  { name: 'teacache', transform: (m, l) => teaCacheTransform(m, undefined, l), wrap: wrapWith(teacache), always: { threshold: 0 }, caching: { threshold: 0.4 } },
];

const transformWith = (c: Case, lowering: Lowering, counts: { ifs: number }) => (component: string, model: Model) => {
  if (component !== 'transformer' && component !== 'unet') return model;
  const before = [...model.graph.initializers.keys()].length;
  c.transform(model, lowering);
  counts.ifs = model.graph.nodeList().filter((n) => n.opType === 'If').length;
  // no weight held twice: every initializer lives in exactly one graph (the main one or a branch)
  const names = [...allNodes(model.graph)].flatMap((n) => n.subgraphs()).flatMap((sg) => [...sg.initializers.keys()]).concat([...model.graph.initializers.keys()]);
  assert.equal(new Set(names).size, names.length);
  if (lowering === 'if') assert.ok(model.graph.initializers.size < before, 'weights moved into the branches');
  return model;
};

const skipped = (r: CacheStepReport[]) => r.filter((e) => e.reused.length > 0).length;

// timesteps of the tiny fixtures' schedules fall inside (0, 1000)
const PAB: Case = {
  name: 'pab', transform: (m, l) => pabTransform(m, l), wrap: wrapWith(pab),
  always: { spatialAttentionBlockSkipRange: null, crossAttentionBlockSkipRange: null },
  caching: { spatialAttentionBlockSkipRange: 2, spatialAttentionTimestepSkipRange: [0, 1000], crossAttentionBlockSkipRange: 3, crossAttentionTimestepSkipRange: [0, 1000] },
};
const DEEPCACHE: Case = { name: 'deepcache', transform: (m, l) => deepCacheTransform(m, 0, l), wrap: wrapWith(deepcache), always: { interval: 1 }, caching: { interval: 2 } };
// a deeper cut (block 2, layer 1: down_blocks.0-1 and parts of down_blocks.2 and up_blocks.1 run on cached steps)
const DEEPCACHE_7: Case = { name: 'deepcache branch 7', transform: (m, l) => deepCacheTransform(m, 7, l), wrap: wrapWith(deepcache), always: { interval: 1, branch: 7 }, caching: { interval: 3, branch: 7 } };

/** The denoiser's blocks in graph order, from its config: what the report of the DiT cachers names. */
function ditBlocks(folder: string): string[] {
  const c = JSON.parse(readFileSync(join(folder, 'transformer', 'config.json'), 'utf8')) as { num_layers: number; num_single_layers: number };
  return [...Array.from({ length: c.num_layers }, (_, i) => `transformer_blocks.${i}`), ...Array.from({ length: c.num_single_layers }, (_, i) => `single_transformer_blocks.${i}`)];
}

/**
 * The report names modules at block granularity: fbcache always runs block 0 and skips the rest;
 * teacache always runs block 0's norm1 and skips every block; deepcache runs its shallow modules
 * and skips the deep ones (what its cut names, from the block records).
 */
function checkReport(name: string, report: CacheStepReport[], folder: string, model?: () => Model): void {
  const deep = name.startsWith('deepcache') ? deepCacheModules(model!(), name === 'deepcache' ? 0 : 7) : undefined;
  for (const s of report) {
    const reused = s.reused.length > 0;
    const where = `step ${s.step} ${s.branch}`;
    if (name === 'fbcache') {
      const blocks = ditBlocks(folder);
      assert.deepEqual(s.computed, reused ? blocks.slice(0, 1) : blocks, where);
      assert.deepEqual(s.reused, reused ? blocks.slice(1) : [], where);
    } else if (name === 'teacache') {
      const blocks = ditBlocks(folder);
      assert.deepEqual(s.computed, reused ? ['transformer_blocks.0.norm1'] : ['transformer_blocks.0.norm1', ...blocks], where);
      assert.deepEqual(s.reused, reused ? blocks : [], where);
    } else if (name === 'fora' || name === 'taylorseer' || name === 'pab') {
      // the blocks run every step around their attention (and feed-forward) modules, which are computed or reused
      const blocks = name === 'pab' && !existsSync(join(folder, 'transformer'))
        ? ['down_blocks.0', 'down_blocks.1', 'down_blocks.2', 'down_blocks.3', 'mid_block', 'up_blocks.0', 'up_blocks.1', 'up_blocks.2', 'up_blocks.3']
        : ditBlocks(folder);
      assert.deepEqual(s.computed.slice(0, blocks.length), blocks, where);
      const parts = [...s.computed.slice(blocks.length), ...s.reused];
      assert.ok(parts.length > 0 && parts.every((m) => blocks.some((b) => m.startsWith(`${b}.`))), where);
      assert.equal(new Set(parts).size, parts.length, where);
    } else if (deep) {
      assert.deepEqual(s.computed, reused ? deep.shallow : [...deep.shallow, ...deep.deep], where);
      assert.deepEqual(s.reused, reused ? deep.deep : [], where);
    }
  }
}

for (const [label, folder, opts, adaptiveOk, cases] of [
  ['flux-tiny', fixture('pipelines', 'flux-tiny'), () => e2eOptions('e2e_flux_tiny_fox') as GenerateOptions, false, [...CASES, PAB]],
  ['trained shapes-flux', fixture('trained', 'shapes-flux'), () => e2eOptions('e2e_shapes_flux_red_circle') as GenerateOptions, true, CASES],
  ['sd15-tiny', fixture('pipelines', 'sd15-tiny'), () => e2eOptions('e2e_sd15_tiny_cat') as GenerateOptions, false, [DEEPCACHE, DEEPCACHE_7, PAB]],
] as const) {
  describe(`cachers on ${label}`, () => {
    let plain: Pipeline;
    // the plain pipeline's image, generated once for every case (the same seed gives the same image)
    let plainImage: Promise<GenerateResult> | undefined;
    before(async () => {
      plain = await loadPipeline(folder, { cacheDir, threads: 1 });
    });
    after(async () => {
      await plain?.release();
    });

    for (const c of cases) {
      // adaptive caches never trigger on random weights: their reuse is tested on the trained pipeline
      const reuses = c.name === 'fora' || c.name === 'taylorseer' || c.name.startsWith('deepcache') || c.name === 'pab' || adaptiveOk;
      test(`${c.name}: always-compute through the If graph = the plain image; caching = the overwrite reference`, async () => {
        const gated = { ifs: 0 };
        const p = await loadPipeline(folder, { cacheDir, threads: 1, transform: transformWith(c, 'if', gated) });
        const ref = await loadPipeline(folder, { cacheDir, threads: 1, transform: transformWith(c, 'where', { ifs: 0 }) });
        try {
          assert.ok(gated.ifs > 0, 'the transformed graph has If nodes');
          assert.ok(p.denoiser.inputNames.some((n) => n.startsWith('cache')), 'the session is the transformed graph');
          const base = await (plainImage ??= plain.generate(opts()));
          const always = c.wrap(p.denoiser, c.always);
          const [a, b] = await withWrapper(p, always, async () => [await p.generate(opts()), await p.generate(opts())]);
          const e = relL2(a.images.data, base.images.data);
          console.log(`${label} ${c.name} always-compute vs plain: relL2 ${e.toExponential(2)} (${gated.ifs} If)`);
          assert.ok(e < 1e-6, `relL2 ${e}`);
          assert.deepEqual(b.images.data, a.images.data);
          assert.equal(skipped(a.cache!), 0);
          assert.equal(a.cache!.length, a.timings.stepsMs.length);

          const cached = c.wrap(p.denoiser, c.caching);
          const [x, y] = await withWrapper(p, cached, async () => [await p.generate(opts()), await p.generate(opts())]);
          const r = await withWrapper(ref, c.wrap(ref.denoiser, c.caching), () => ref.generate(opts()));
          const n = skipped(x.cache!);
          const err = relL2(x.images.data, r.images.data);
          const drift = relL2(x.images.data, base.images.data);
          console.log(`${label} ${c.name} ${JSON.stringify(c.caching)}: skipped ${n}/${x.cache!.length}; vs overwrite reference relL2 ${err.toExponential(2)}; vs uncached ${drift.toExponential(2)}`);
          assert.deepEqual(y.images.data, x.images.data, 'the same seed twice gives the same image');
          assert.deepEqual(x.cache!.map((s) => s.reused.length > 0), r.cache!.map((s) => s.reused.length > 0), 'the same decisions as the reference');
          checkReport(c.name, x.cache!, folder, () => loadModel(join(p.source.onnxDir, 'unet', 'model.onnx')));
          checkReport(c.name, a.cache!, folder, () => loadModel(join(p.source.onnxDir, 'unet', 'model.onnx')));
          assert.ok(err < 1e-4, `relL2 vs reference ${err}`);
          if (reuses) {
            assert.ok(n > 0, 'some steps reused');
            assert.ok(drift > 1e-5, 'reusing changes the image');
          }
          if ((c.name === 'fbcache' || c.name === 'teacache') && adaptiveOk) {
            // fbcache at its default 0.05 and teacache at 0.4 skip at least a quarter of the 28 steps
            assert.equal(x.cache!.length, 28);
            assert.ok(n >= 7, `${c.name} skipped ${n} of 28 steps`);
            // the graph's decisions are the policy's on the distances it measured
            const policy = c.name === 'fbcache' ? new FbCachePolicy(c.caching) : new TeaCachePolicy(c.caching);
            const numSteps = x.cache!.length;
            const decisions = x.cache!.map((s) => policy.decideDistance({ step: s.step, numSteps, timestep: 0, branch: 'cond' }, s.distance));
            assert.deepEqual(decisions, x.cache!.map((s) => (s.reused.length ? 'reuse' : 'compute')));
          }
        } finally {
          await p.release();
          await ref.release();
        }
      });
    }
  });
}
