// EvaluationAgent: the base runs once per prompt and seed, smashed pipelines get the same latents
// and are compared pairwise; latency figures on a fake clock; CLIP score and CMMD through small graphs.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { InMemoryTensor } from '../../src/core/tensor.js';
import { ConfigError } from '../../src/errors.js';
import { EvaluationAgent, type EvaluablePipeline } from '../../src/eval/agent.js';
import { ClipModel } from '../../src/eval/clip-model.js';
import { CLIP_MEAN, CLIP_STD } from '../../src/eval/clip-preprocess.js';
import { clipScore } from '../../src/eval/clip-score.js';
import { cmmd } from '../../src/eval/cmmd.js';
import { defineTask } from '../../src/eval/task.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Model } from '../../src/ir/graph.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/loader.js';
import type { GenerateOptions } from '../../src/pipelines/pipeline.js';
import { smash } from '../../src/smash/smash.js';
import { fixture } from '../helpers.js';
import { tempDir } from '../pipelines/fixtures.js';

const tmp = tempDir('eval-agent');
let pipe: Pipeline;
before(async () => {
  pipe = await loadPipeline(fixture('pipelines', 'flux-tiny'), { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
});
after(async () => {
  await pipe?.release();
  tmp.cleanup();
});

const GEN = { steps: 3, width: 32, height: 32, maxSequenceLength: 32 };

/** The pipeline, with each generate() call logged and a fake clock advanced by the next scripted duration. */
function scripted(p: EvaluablePipeline, clock: { now: number }, durations: number[], calls: GenerateOptions[]): EvaluablePipeline {
  return {
    latentChannels: p.latentChannels,
    vaeScale: p.vaeScale,
    defaultSize: p.defaultSize,
    generationDefaults: p.generationDefaults,
    generate: async (o) => {
      calls.push(o);
      const r = await p.generate(o);
      clock.now += durations.shift() ?? 1;
      return r;
    },
  };
}

/** image_embeds = per-channel mean of pixel_values; text_embeds = row of an identity table at the first id. */
function toyClip(): { vision: Model; text: Model } {
  const v = new GraphBuilder('vision');
  const px = v.input('pixel_values', 'float32', ['n', 3, 32, 32]);
  v.output(v.op('ReduceMean', [px, v.constI64([2, 3])], { keepdims: 0 }), 'image_embeds', 'float32', ['n', 3]);
  const t = new GraphBuilder('text');
  const ids = t.input('input_ids', 'int64', ['n', 1]);
  const table = t.weight('table', new InMemoryTensor('float32', [3, 3], Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1])));
  t.output(t.squeeze(t.op('Gather', [table, ids], { axis: 0 }), [1]), 'text_embeds', 'float32', ['n', 3]);
  return { vision: v.model({ '': 18 }), text: t.model({ '': 18 }) };
}

const COLOURS: Record<string, number> = { red: 0, green: 1, blue: 2 };

test('the base runs once per prompt and seed (plus warm-up); smashed pipelines get the same seeds and latents; latency on a fake clock', async () => {
  const clock = { now: 0 };
  const task = defineTask({ prompts: ['a small red circle at the left on a blue background', 'a large green square at the top on a black background'], seeds: [3, 4], generation: GEN, warmup: 1 });
  const agent = new EvaluationAgent(task, { clock: () => clock.now });
  const baseCalls: GenerateOptions[] = [];
  // warm-up 1000 ms (excluded), then 30, 10, 20, 40: median 25 ms, 4 images in 100 ms = 40 images/s
  const base = await agent.evaluateBase({ name: 'base', pipe: scripted(pipe, clock, [1000, 30, 10, 20, 40], baseCalls), loadMs: 12, modelDir: pipe.source.onnxDir });
  assert.equal(baseCalls.length, 1 + 4);
  assert.deepEqual(baseCalls.slice(1).map((o) => `${o.seed}`), ['3', '4', '3', '4']);
  assert.equal(base.metrics.latencyMs, 25);
  assert.equal(base.metrics.throughputImagesPerS, 40);
  assert.equal(base.metrics.coldLoadMs, 12);
  assert.ok(base.metrics.stepMs! > 0 && base.metrics.peakRssMiB! > 10 && base.metrics.modelBytes! > 1000);
  assert.equal(base.metrics.psnrDb, undefined);

  // the same pipeline again: identical pictures and latents
  const sameCalls: GenerateOptions[] = [];
  const same = await agent.evaluate({ name: 'same', pipe: scripted(pipe, clock, [5, 7, 9, 11, 13], sameCalls) });
  assert.equal(same.metrics.psnrDb, Infinity);
  assert.equal(same.metrics.ssim, 1);
  assert.equal(same.metrics.latentRelL2, 0);
  assert.equal(same.metrics.latencyMs, 10); // median of 7, 9, 11, 13
  for (let i = 0; i < sameCalls.length; i++) {
    assert.equal(sameCalls[i]!.prompt, baseCalls[i]!.prompt);
    assert.equal(sameCalls[i]!.seed, baseCalls[i]!.seed);
    assert.deepEqual(sameCalls[i]!.latents!.data, baseCalls[i]!.latents!.data);
  }

  // a smashed pipeline: finite pairwise figures, and still no further base run
  const q = await smash(pipe, { int8Dynamic: {} }, { threads: 1 });
  try {
    const r = await agent.evaluate({ name: 'int8', pipe: scripted(q, clock, [], []), smashMs: 77 });
    assert.ok(Number.isFinite(r.metrics.psnrDb) && r.metrics.psnrDb! > 10, String(r.metrics.psnrDb));
    assert.ok(r.metrics.ssim! < 1 && r.metrics.ssim! > 0);
    assert.ok(r.metrics.latentRelL2! > 0);
    assert.equal(r.metrics.smashMs, 77);
    assert.equal(r.samples.length, 4);
    assert.ok(r.samples.every((s) => s.png.subarray(1, 4).toString() === 'PNG'));
  } finally {
    await q.release();
  }
  assert.equal(baseCalls.length, 5);
});

test('metrics that need a model name it when it is missing; smashed before base is refused', async () => {
  const task = defineTask({ prompts: ['a'], metrics: ['cmmd'] });
  assert.throws(() => new EvaluationAgent(task), (e: unknown) => e instanceof ConfigError && e.code === 'CLIP_MODEL_MISSING' && /--clip/.test(e.message));
  assert.throws(() => new EvaluationAgent(defineTask({ prompts: ['a'], metrics: ['lpips'] })), (e: unknown) => e instanceof ConfigError && e.code === 'LPIPS_MODEL_MISSING' && /--lpips/.test(e.message));
  assert.throws(() => defineTask({ prompts: ['a'], metrics: ['fid'] }), (e: unknown) => e instanceof ConfigError && /unknown metric 'fid'/.test(e.message));
  await assert.rejects(new EvaluationAgent(defineTask({ prompts: ['a'] })).evaluate({ name: 'x', pipe }), (e: unknown) => e instanceof ConfigError && e.code === 'NO_BASE');
});

test('CLIP score and CMMD through small graphs: constant-colour pictures embed to their normalized colour', async () => {
  const g = toyClip();
  const clip = await ClipModel.create({ ...g, tokenize: (p) => [COLOURS[p]!], preprocess: { size: 32, crop: 32 } });
  try {
    const picture = (rgb: number[]) => Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => rgb[Math.floor(i / 1024)]!);
    const [red] = await clip.embedImages(picture([1, 0, 0]), [1, 3, 32, 32]);
    const e = [(1 - CLIP_MEAN[0]) / CLIP_STD[0], -CLIP_MEAN[1] / CLIP_STD[1], -CLIP_MEAN[2] / CLIP_STD[2]];
    for (let i = 0; i < 3; i++) assert.ok(Math.abs(red![i]! - e[i]!) < 1e-5);
    // cos(e, (1, 0, 0)) = e0 / |e|; the green axis is negative for red: score 0
    const norm = Math.hypot(...e);
    const text = await clip.embedTexts(['red', 'green']);
    assert.ok(Math.abs(clipScore([red!, red!], text) - (100 * e[0]! / norm + 0) / 2) < 1e-4);
    // CMMD of {red} against {blue}: 1000·(2 − 2·exp(−‖ê_r − ê_b‖² / 200)) on unit vectors
    const [blue] = await clip.embedImages(picture([0, 0, 1]), [1, 3, 32, 32]);
    const b = [-CLIP_MEAN[0] / CLIP_STD[0], -CLIP_MEAN[1] / CLIP_STD[1], (1 - CLIP_MEAN[2]) / CLIP_STD[2]];
    const nb = Math.hypot(...b);
    const d2 = e.reduce((s, v, i) => s + (v / norm - b[i]! / nb) ** 2, 0);
    assert.ok(Math.abs(cmmd([red!], [blue!]) - 1000 * (2 - 2 * Math.exp(-d2 / 200))) < 1e-3);
  } finally {
    await clip.release();
  }
});

test('the agent adds CLIP score and CMMD: the base against itself has CMMD 0, the same pictures the same score', async () => {
  const g = toyClip();
  const clip = await ClipModel.create({ ...g, tokenize: (p) => [COLOURS[p.split(' ')[2]!]!], preprocess: { size: 32, crop: 32 } });
  try {
    const task = defineTask({ prompts: ['a small red circle at the left on a blue background', 'a large blue square at the top on a black background'], generation: GEN, warmup: 0, metrics: ['clipScore', 'cmmd', 'psnrDb'] });
    const agent = new EvaluationAgent(task, { clip });
    const base = await agent.evaluateBase({ name: 'base', pipe });
    const again = await agent.evaluate({ name: 'again', pipe });
    assert.equal(base.metrics.cmmd, 0);
    assert.ok(Math.abs(again.metrics.cmmd!) < 1e-9);
    assert.ok(base.metrics.clipScore! >= 0 && base.metrics.clipScore! <= 100);
    assert.equal(again.metrics.clipScore, base.metrics.clipScore);
    assert.deepEqual(Object.keys(again.metrics).sort(), ['clipScore', 'cmmd', 'psnrDb']);
  } finally {
    await clip.release();
  }
});
