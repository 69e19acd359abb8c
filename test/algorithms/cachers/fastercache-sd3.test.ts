// FasterCache on the SD3 transformer with batched CFG (rows 0 and 1 of the reference inputs as the
// unconditional and conditional halves), both caches at once, driven the way the loop drives a
// denoiser: every second step runs only the conditional row, extrapolates attention and rebuilds
// the unconditional prediction. Against (1) the plain graph when everything is computed and (2)
// the overwrite reference: the 'where' graph run on both rows every step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildComponent } from '../../../src/models/convert.js';
import type { Model } from '../../../src/ir/graph.js';
import { Session, type HostTensor } from '../../../src/runtime/session.js';
import { SessionDenoiser, type DenoiseContext, type DenoiserFeeds, type GenerationSignature, type PredictRequest } from '../../../src/pipelines/denoiser.js';
import { FasterCacheDenoiser, UNCONDITIONAL, fastercache, fasterCacheConfig, fasterCacheParts, fasterCacheTransform, rows } from '../../../src/algorithms/cachers/fastercache.js';
import { extrapolateAttention } from '../../../src/algorithms/cachers/policies/index.js';
import { fixture, readF32, relL2 } from '../../helpers.js';

const REF = fixture('models', 'sd3-transformer-tiny', 'reference.safetensors');
const build = (): Model => buildComponent(fixture('models', 'sd3-transformer-tiny')).model!;
const f32 = (k: string): HostTensor => { const r = readF32(REF, k); return { dtype: 'float32', dims: r.shape, data: r.data }; };
const TIMESTEPS = [990, 800, 600, 400, 200, 50];
const signature: GenerationSignature = { batch: 1, width: 64, height: 64, steps: TIMESTEPS.length, cfg: 'batched' };
const ALL_RANGES = { spatialAttentionTimestepSkipRange: [-1, 1001], unconditionalBatchTimestepSkipRange: [-1, 1001] };

class BothHalvesReference extends FasterCacheDenoiser {
  protected override async conditionalOnly(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest, extra: DenoiserFeeds, B: number) {
    const { r, all } = await this.call(feeds, ctx, request, extra, this.cutOutputs(), []);
    return { r: { sample: rows(r.sample, B, 2 * B), outputs: r.outputs }, all: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, rows(v, B, 2 * B)])) };
  }
}

/** Six steps of a loop: the latents move a little each step; returns each step's prediction. */
async function drive(d: { predict: SessionDenoiser['predict']; reset(s: GenerationSignature): void }): Promise<Float32Array[]> {
  d.reset(signature);
  const x = f32('input.hidden_states');
  const fixed = { encoder_hidden_states: f32('input.encoder_hidden_states'), pooled_projections: f32('input.pooled_projections') };
  const out: Float32Array[] = [];
  for (const [i, t] of TIMESTEPS.entries()) {
    const hidden = { ...x, data: (x.data as Float32Array).map((v, k) => v * (1 - 0.05 * i) + 0.01 * i * Math.sin(k)) };
    const ctx: DenoiseContext = { stepIndex: i, numSteps: TIMESTEPS.length, timestep: t, sigma: t / 1000, branch: 'cfg', signature };
    const r = await d.predict({ ...fixed, hidden_states: hidden, timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(t, t) } }, ctx);
    assert.deepEqual(r.sample.dims, [2, 16, 8, 8]);
    out.push(r.sample.data as Float32Array);
  }
  return out;
}

test('sd3-transformer-tiny fastercache: its joint attention modules are the parts; computed = plain, cached = the overwrite reference', async () => {
  assert.deepEqual(fasterCacheParts(build()).map((p) => p.part), ['transformer_blocks.0.attn', 'transformer_blocks.1.attn']);
  const plain = await Session.create(build(), { threads: 1 });
  const gated = await Session.create(fasterCacheTransform(build(), 'if'), { threads: 1 });
  const ref = await Session.create(fasterCacheTransform(build(), 'where'), { threads: 1 });
  const wrap = (s: Session, params: Record<string, unknown>, Cls = FasterCacheDenoiser) => new Cls(new SessionDenoiser(s, 'out_hidden_states'), fasterCacheConfig(fastercache.schema.parse(params), { denoiser: 'sd3' }));
  try {
    assert.ok(gated.inputNames.includes('cache.attention_weight') && gated.inputNames.some((n) => n.startsWith('cache_prev/')));
    const base = await drive(new SessionDenoiser(plain, 'out_hidden_states'));
    const always = wrap(gated, { ...ALL_RANGES, interval: 1, unconditionalBatchSkipRange: 1 });
    const a = await drive(always);
    a.forEach((p, i) => assert.ok(relL2(p, base[i]!) <= 1e-6, `step ${i}: ${relL2(p, base[i]!)}`));
    assert.ok(always.cacheReport().every((s) => s.reused.length === 0 && s.computed.length === 3));

    const caching = { ...ALL_RANGES, interval: 2, unconditionalBatchSkipRange: 2, alphaLowFrequency: 1.2, lowFrequencyWeightUpdateTimestepRange: [-1, 1001] };
    const cached = wrap(gated, caching);
    const x = await drive(cached);
    const again = await drive(cached);
    const reference = wrap(ref, caching, BothHalvesReference);
    const r = await drive(reference);
    const report = cached.cacheReport();
    assert.deepEqual(report.map((s) => s.reused), [0, 1, 2, 3, 4, 5].map((i) => (i % 2 ? [UNCONDITIONAL, 'transformer_blocks.0.attn', 'transformer_blocks.1.attn'] : [])));
    assert.deepEqual(report.map((s) => s.reused), reference.cacheReport().map((s) => s.reused));
    x.forEach((p, i) => {
      assert.deepEqual(p, again[i], 'reset between runs: the same predictions');
      const err = relL2(p, r[i]!);
      assert.ok(err < 1e-4, `step ${i} vs reference: relL2 ${err}`);
    });
    // the skipped steps differ from computing them: both rows are estimates there
    for (const i of [1, 3, 5]) assert.ok(relL2(x[i]!, base[i]!) > 1e-4, `step ${i} differs from the plain model`);
    console.log(`sd3-transformer-tiny fastercache: vs reference max relL2 ${Math.max(...x.map((p, i) => relL2(p, r[i]!))).toExponential(2)}; step 3 vs plain ${relL2(x[3]!, base[3]!).toExponential(2)}`);
  } finally {
    await Promise.all([plain.release(), gated.release(), ref.release()]);
  }
});

test('sd3-transformer-tiny fastercache: a reused module gives t1 + (t1 − t2)·w, as the policy\'s extrapolateAttention', async () => {
  const gated = await Session.create(fasterCacheTransform(build(), 'if'), { threads: 1 });
  try {
    const feeds = (t: number): Record<string, HostTensor> => ({
      hidden_states: f32('input.hidden_states'), encoder_hidden_states: f32('input.encoder_hidden_states'), pooled_projections: f32('input.pooled_projections'),
      timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(t, t) },
    });
    const ins = gated.inputNames.filter((n) => n.startsWith('cache_in/'));
    const prev = (n: string) => n.replace('cache_in/', 'cache_prev/');
    const out = (n: string) => n.replace('cache_in/', 'cache_out/');
    const placeholder: HostTensor = { dtype: 'float32', dims: [1, 1, 1], data: new Float32Array(1) };
    const state = Object.fromEntries(ins.flatMap((n) => [[n, placeholder], [prev(n), placeholder]]));
    const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
    const w = (x: number): HostTensor => ({ dtype: 'float32', dims: [], data: Float32Array.of(x) });
    const a = await gated.run({ ...feeds(900), ...state, 'cache.compute': bool(true), 'cache.attention_weight': w(0.3) });
    const b = await gated.run({ ...feeds(700), ...state, 'cache.compute': bool(true), 'cache.attention_weight': w(0.3) });
    const kept = Object.fromEntries(ins.flatMap((n) => [[n, b.outputs[out(n)]!], [prev(n), a.outputs[out(n)]!]]));
    const c = await gated.run({ ...feeds(500), ...kept, 'cache.compute': bool(false), 'cache.attention_weight': w(0.3) });
    for (const n of ins) {
      const expected = extrapolateAttention(a.outputs[out(n)]!.data as Float32Array, b.outputs[out(n)]!.data as Float32Array, 0.3);
      const got = c.outputs[out(n)]!.data as Float32Array;
      assert.ok(relL2(got, expected) < 1e-6 && relL2(expected, b.outputs[out(n)]!.data as Float32Array) > 1e-3, n);
    }
  } finally {
    await gated.release();
  }
});
