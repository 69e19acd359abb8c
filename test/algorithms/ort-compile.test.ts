import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuse } from '../../src/algorithms/compilers/ort-compile.js';
import { attentionFusion } from '../../src/runtime/attention.js';
import { fastGeluFusion } from '../../src/algorithms/compilers/fusions/fast-gelu.js';
import { rmsNormFusion } from '../../src/algorithms/compilers/fusions/rms-norm.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { NoMatch, tryRule } from '../../src/ir/rewrite.js';
import { buildComponent } from '../../src/models/convert.js';
import { fixture, relL2 } from '../helpers.js';
import { clipEncoder, fluxDenoiser, opCounts, runOnce, sd3Denoiser, unetDenoiser } from './denoisers.js';

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
