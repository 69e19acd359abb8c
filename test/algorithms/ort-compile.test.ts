import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuse, ortCompile } from '../../src/algorithms/compilers/ort-compile.js';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import type { SessionDenoiser } from '../../src/pipelines/denoiser.js';
import type { Session } from '../../src/runtime/session.js';
import { SmashConfig } from '../../src/smash/config.js';
import { loadPipeline as loadBundle, smash, SMASH_CONFIG_FILE } from '../../src/smash/smash.js';
import { tempDir } from '../pipelines/fixtures.js';
import { attentionFusion, fuseAttention } from '../../src/runtime/attention.js';
import { loadModel } from '../../src/ir/model-file.js';
import { fastGeluFusion } from '../../src/algorithms/compilers/fusions/fast-gelu.js';
import { rmsNormFusion } from '../../src/algorithms/compilers/fusions/rms-norm.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { NoMatch, tryRule } from '../../src/ir/rewrite.js';
import { buildComponent } from '../../src/models/convert.js';
import { fixture, relL2 } from '../helpers.js';
import { clipEncoder, fluxDenoiser, opCounts, optimumUnetDenoiser, runOnce, sd3Denoiser, unetDenoiser } from './denoisers.js';

test('ortCompile fusions on Flux: every attention, qk RMSNorm and tanh-GELU fused; output within 1e-4', async () => {
  const d = fluxDenoiser();
  const ref = await runOnce(d.build(), d);
  const m = d.build();
  const before = opCounts(m);
  const fired = fuse(m, 'cpu');
  const after = opCounts(m);
  assert.equal(after.get('MultiHeadAttention'), before.get('Softmax'), 'one MultiHeadAttention per attention');
  assert.equal(after.get('Softmax') ?? 0, 0);
  assert.equal(fired.get('attention-to-multi-head-attention'), before.get('Softmax'), 'each attention fused once');
  assert.equal(after.get('FastGelu'), before.get('Tanh'));
  assert.ok(after.get('SimplifiedLayerNormalization')! > 0);
  assert.equal(after.get('SimplifiedLayerNormalization'), before.get('ReduceMean'), 'every RMSNorm (the only ReduceMeans here)');
  const err = relL2(await runOnce(m, d), ref);
  assert.ok(err < 1e-4, `relL2 ${err}`);
});

test('ortCompile fusions on the UNet, SD3 and CLIP: attention fused (CLIP\'s masked attention not), outputs within 1e-4', async () => {
  for (const d of [unetDenoiser(), sd3Denoiser(), clipEncoder()]) {
    const ref = await runOnce(d.build(), d);
    const m = d.build();
    const softmax = opCounts(m).get('Softmax');
    fuse(m, 'cpu');
    // CLIP adds its causal mask to the scores: a biased attention is not fused
    assert.equal(opCounts(m).get('MultiHeadAttention') ?? 0, d.name === 'clip-text-tiny' ? 0 : softmax, d.name);
    const err = relL2(await runOnce(m, d), ref);
    assert.ok(err < 1e-4, `${d.name}: relL2 ${err}`);
  }
});

test('attention with an added score bias (T5 position bias) is not fused, and says why', () => {
  const m = buildComponent(fixture('models', 't5-encoder-tiny')).model!;
  const softmaxes = [...m.graph.nodes()].filter((n) => n.opType === 'Softmax');
  assert.ok(softmaxes.length > 0);
  for (const s of softmaxes) {
    const r = tryRule(attentionFusion, s);
    assert.ok(r instanceof NoMatch && /bias|mask/.test(r.reason), String((r as NoMatch).reason));
  }
  assert.equal(fuse(m, 'cpu').get('attention-to-multi-head-attention'), undefined);
});

test('a profile without an op keeps the graph free of it', () => {
  const m = fluxDenoiser().build();
  // dml has no SimplifiedLayerNormalization in its profile
  fuse(m, 'dml');
  const ops = opCounts(m);
  assert.equal(ops.get('SimplifiedLayerNormalization') ?? 0, 0);
  assert.ok(ops.get('MultiHeadAttention')! > 0);
});

/** x [1, 4, 8] through an RMSNorm-like chain over `axis`, with the given square and division. */
function rmsGraph(axis: number, square: 'mul' | 'pow', divide: 'div' | 'inverse' = 'div') {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [1, 4, 8]);
  const sq = square === 'mul' ? b.mul(x, x) : b.op('Pow', [x, b.constF32(2)]);
  const ms = b.op('ReduceMean', [sq], { axes: [axis], keepdims: 1 });
  const rms = b.op('Sqrt', [b.add(ms, b.constF32(1e-6))]);
  const y = divide === 'div' ? b.div(x, rms) : b.mul(x, b.div(b.constF32(1), rms));
  b.output(b.mul(y, b.graph.addInitializer('w', { dtype: 'float32', shape: [8], byteLength: 32, bytes: () => new Uint8Array(32) })), 'y');
  return b.graph;
}

test('RMSNorm fusion: fires on Mul(x, x) and Pow(x, 2), on x / rms and x · (1 / rms), over the last axis, not over another axis', () => {
  const anchor = (g: ReturnType<typeof rmsGraph>) => [...g.nodes()].find((n) => n.opType === 'ReduceMean')!;
  for (const sq of ['mul', 'pow'] as const) assert.ok(!(tryRule(rmsNormFusion, anchor(rmsGraph(-1, sq))) instanceof NoMatch), sq);
  assert.ok(!(tryRule(rmsNormFusion, anchor(rmsGraph(-1, 'pow', 'inverse'))) instanceof NoMatch), 'x · (1 / rms), as PyTorch exports rsqrt');
  const r = tryRule(rmsNormFusion, anchor(rmsGraph(1, 'mul')));
  assert.ok(r instanceof NoMatch && /last axis/.test(r.reason));
});

test('FastGelu fusion: fires on the tanh form, not when a constant is off', () => {
  const build = (c: number) => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 8]);
    const x3 = b.mul(b.mul(x, x), x);
    const inner = b.mul(b.add(x, b.mul(x3, b.constF32(c))), b.constF32(Math.sqrt(2 / Math.PI)));
    b.output(b.mul(b.mul(x, b.constF32(0.5)), b.add(b.op('Tanh', [inner]), b.constF32(1))), 'y');
    return [...b.graph.nodes()].find((n) => n.opType === 'Tanh')!;
  };
  assert.ok(!(tryRule(fastGeluFusion, build(0.044715)) instanceof NoMatch));
  assert.ok(tryRule(fastGeluFusion, build(0.05)) instanceof NoMatch);
});

// ---------------------------------------------------------------------------------------------
// The session side: static shapes and thread settings, through smash() and a saved bundle.

const sessionTmp = tempDir('ort-compile');
after(() => sessionTmp.cleanup());
const cacheDir = join(sessionTmp.dir, 'cache');
const denoiserSession = (p: { denoiser: unknown }) => (p.denoiser as SessionDenoiser).session;
/** The dims onnxruntime's session declares for an input. */
const declared = async (s: Session, input: string) => {
  const m = (await s.load()).inputMetadata.find((x) => x.name === input)!;
  return { shape: m.isTensor ? m.shape : [] };
};
const FLUX_CALL = { prompt: 'a small green triangle at the top on a black background', width: 32, height: 32, steps: 4, maxSequenceLength: 32, seed: 1 };

test('ortCompile static shapes on shapes-flux: bound at load to the sizes asked; another size re-creates the sessions once (reported) and draws what the unsmashed pipeline draws; a bundle keeps the settings', async () => {
  const base = await loadPipeline(fixture('trained', 'shapes-flux'), { cacheDir, threads: 1 });
  const fast = await smash(base, { ortCompile: { staticShapes: true, width: 32, height: 32, maxSequenceLength: 32, intraOpSpinning: false } }, { threads: 1 });
  const den = denoiserSession(fast);
  // 32×32 with a VAE downsampling by 2: (16/2)² = 64 packed tokens, 32 T5 tokens
  assert.deepEqual(den.staticShapes, { batch_size: 1, packed_height_width: 64, sequence_length: 32 });
  assert.deepEqual((await declared(den, 'hidden_states')).shape, [1, 64, 64], 'onnxruntime sees the bound sizes');
  assert.deepEqual((await declared(den, 'txt_ids')).shape, [32, 3]);

  const a = await fast.generate(FLUX_CALL);
  assert.equal(a.timings.reshapeMs, 0, 'the bound size runs as loaded');
  const err = relL2(a.images.data, (await base.generate(FLUX_CALL)).images.data);
  assert.ok(err < 1e-4, `bound size vs unsmashed: relL2 ${err}`);

  const other = { ...FLUX_CALL, width: 48, maxSequenceLength: 16 };
  const b = await fast.generate(other);
  assert.ok(b.timings.reshapeMs > 0, 'the re-creation is reported');
  assert.deepEqual(den.reshapes.map((r) => r.dims), [{ batch_size: 1, packed_height_width: 96, sequence_length: 16 }]);
  const err2 = relL2(b.images.data, (await base.generate(other)).images.data);
  assert.ok(err2 < 1e-4, `another size vs unsmashed: relL2 ${err2}`);
  assert.equal((await fast.generate(other)).timings.reshapeMs, 0, 'bound to the new size from then on');

  const dir = join(sessionTmp.dir, 'flux-static');
  await fast.save(dir);
  await fast.release();
  const saved = JSON.parse(readFileSync(join(dir, SMASH_CONFIG_FILE), 'utf8'));
  assert.deepEqual(saved.sessions.transformer, {
    configEntries: { 'session.intra_op.allow_spinning': '0' },
    staticShapes: { batch_size: 1, packed_height_width: 64, sequence_length: 32 },
  });
  assert.deepEqual(saved.sessions.vae_decoder.staticShapes, { batch_size: 1, latent_height: 16, latent_width: 16 });
  const again = await loadBundle(dir, { threads: 1 });
  assert.deepEqual(denoiserSession(again).staticShapes, { batch_size: 1, packed_height_width: 64, sequence_length: 32 });
  assert.deepEqual((await declared(denoiserSession(again), 'hidden_states')).shape, [1, 64, 64]);
  const c = await again.generate(FLUX_CALL);
  assert.equal(c.timings.reshapeMs, 0);
  assert.ok(relL2(c.images.data, a.images.data) < 1e-5, 'the bundle draws the in-memory picture');
  await again.release();
  await base.release();

  // a malformed `sessions` entry names the key, before any session
  writeFileSync(join(dir, SMASH_CONFIG_FILE), JSON.stringify({ ...saved, sessions: { transformer: { staticShapes: { batch_size: -1 } } } }));
  await assert.rejects(loadBundle(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'SMASH_CONFIG_JSON' && e.message.includes('sessions.transformer.staticShapes.batch_size'));
});

test('ortCompile static shapes at the pipeline\'s defaults (shapes-sd: 32×32, CFG batched): the UNet gets batch 2 and the generation needs no re-creation', async () => {
  const base = await loadPipeline(fixture('trained', 'shapes-sd'), { cacheDir, threads: 1 });
  assert.deepEqual(base.defaultSize, { width: 32, height: 32 });
  const fast = await smash(base, { ortCompile: { staticShapes: true } }, { threads: 1 });
  assert.deepEqual(denoiserSession(fast).staticShapes, { batch_size: 2, steps: 2, height: 16, width: 16, sequence_length: 77 });
  const call = { prompt: 'a large yellow square at the center on a blue background', steps: 3, guidanceScale: 7.5, seed: 7 };
  const r = await fast.generate(call);
  assert.equal(r.timings.reshapeMs, 0, `no session re-created: ${JSON.stringify(denoiserSession(fast).reshapes)}`);
  const err = relL2(r.images.data, (await base.generate(call)).images.data);
  assert.ok(err < 1e-4, `relL2 ${err}`);
  await Promise.all([base.release(), fast.release()]);
});

test('ortCompile session settings reach every component\'s session options; bad values are ConfigErrors naming the key', () => {
  const target = { className: 'FluxPipeline', denoiser: 'flux' as const, components: ['transformer'], shapes: () => ({ transformer: { batch_size: 1 } }) };
  const app = ortCompile.apply(ortCompile.schema.parse({ staticShapes: true, intraOpThreads: 2, executionMode: 'parallel', interOpThreads: 2, interOpSpinning: false, denormalAsZero: true }), target);
  assert.deepEqual(app.sessionOptions!('transformer'), {
    threads: 2, interOpThreads: 2, executionMode: 'parallel',
    configEntries: { 'session.inter_op.allow_spinning': '0', 'session.set_denormal_as_zero': '1' },
    staticShapes: { batch_size: 1 },
  });
  assert.deepEqual(app.sessionOptions!('vae_decoder').staticShapes, undefined, 'no shapes known: left dynamic');
  const defaults = ortCompile.apply(ortCompile.schema.parse({}), target);
  assert.deepEqual(defaults.sessionOptions!('transformer'), {}, 'by default (as measured) onnxruntime\'s own settings, dynamic shapes');
  assert.throws(() => new SmashConfig({ ortCompile: { executionMode: 'fast' } }), (e: unknown) => e instanceof ConfigError && /executionMode/.test(e.message));
  assert.throws(() => new SmashConfig({ ort_compile: { intra_op_threads: 0 } }), (e: unknown) => e instanceof ConfigError && /intraOpThreads|intra_op_threads/.test(e.message));
});

test('attention as the exporters write it (Optimum\'s current and legacy, torch.onnx\'s UNet): run-time view targets and scales worked out, every attention fused, output within 1e-4', async () => {
  for (const exporter of [['optimum', 'current'], ['optimum', 'legacy'], ['torch-export']]) {
    const m = loadModel(fixture(...exporter, 'sd15-tiny', 'unet', 'model.onnx'));
    assert.equal(opCounts(m).get('Softmax'), 32);
    assert.equal(fuseAttention(m, 'cpu'), 32, exporter.join('/'));
    assert.equal(opCounts(m).get('Softmax') ?? 0, 0, exporter.join('/'));
  }
  const d = optimumUnetDenoiser();
  const ref = await runOnce(d.build(), d);
  const m = d.build();
  fuseAttention(m, 'cpu');
  const err = relL2(await runOnce(m, d), ref);
  assert.ok(err < 1e-4, `relL2 ${err}`); // 9.0e-7 measured
});
