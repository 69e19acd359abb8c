import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { allNodes, type Model } from '../../src/ir/graph.js';
import { InMemoryTensor, tensor } from '../../src/core/tensor.js';
import { inferDtypes, outputDtype } from '../../src/ir/type-inference.js';
import { buildFluxTransformer2DModel } from '../../src/models/flux-transformer-2d.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { Session, f32, i64, type HostTensor } from '../../src/runtime/session.js';
import { gateRegion, newInputs } from '../../src/ir/region.js';
import { fixture } from '../helpers.js';

test('output dtypes of common ops follow the ONNX type rules', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float16', [2, 3]);
  const ids = b.input('ids', 'int64', [4]);
  const shape = b.shape(x);
  const eq = b.op('Equal', [shape, b.constI64([2, 3])]);
  const where = b.op('Where', [eq, b.constI64([1, 1]), shape]);
  const cast = b.cast(x, 1);
  const gathered = b.op('Gather', [x, ids]);
  const [q, scale, zp] = b.opN('DynamicQuantizeLinear', [cast], {}, { outputs: 3 });
  const cos = b.op('ConstantOfShape', [shape]);
  const mm = b.matmul(b.op('Relu', [x]), b.weight('w', tensor.f32([3, 3], new Array(9).fill(0))));
  const unknown = b.op('SomethingNew', [x], {}, { domain: 'com.example' });
  inferDtypes(b.graph);
  assert.equal(shape.dtype, 'int64');
  assert.equal(eq.dtype, 'bool');
  assert.equal(where.dtype, 'int64');
  assert.equal(cast.dtype, 'float32');
  assert.equal(gathered.dtype, 'float16');
  assert.deepEqual([q!.dtype, scale!.dtype, zp!.dtype], ['uint8', 'float32', 'uint8']);
  assert.equal(cos.dtype, 'float32');
  assert.equal(mm.dtype, 'float16');
  assert.equal(unknown.dtype, undefined, 'ops it does not know stay unknown rather than guessed');
  assert.equal(outputDtype(shape.producer!, 0), 'int64');
});

test('every value of a built Flux transformer gets a dtype', () => {
  const dir = fixture('models', 'flux-transformer-tiny');
  const m = buildFluxTransformer2DModel(ModelConfig.load(dir), new Weights(Checkpoint.open(dir))).model!;
  const left = inferDtypes(m.graph);
  assert.equal(left, 0);
  for (const n of allNodes(m.graph)) for (const o of n.outputs) assert.ok(o.dtype, `${n.name} output ${o.name} has no dtype`);
});

/**
 * Runs `m` with every node output fetched and checks each inferred shape against what onnxruntime
 * computes (rank, and every dim inferred as a number or a named input dim). Returns how many
 * values had a shape.
 */
async function checkAgainstOrt(m: Model, feeds: Record<string, HostTensor>, sizes: Record<string, number>): Promise<number> {
  const declared = new Set(m.graph.outputs);
  const inner = [...m.graph.nodes()].flatMap((n) => n.outputs).filter((v) => !declared.has(v) && v.producer?.opType !== 'Constant');
  m.graph.outputs.push(...inner);
  const s = await Session.create(m, { optimizationLevel: 'disabled', threads: 1 });
  const { outputs } = await s.run(feeds);
  await s.release();
  let shaped = 0;
  for (const v of inner) {
    if (!v.shape) continue;
    shaped++;
    const got = outputs[v.name]!.dims;
    assert.equal(got.length, v.shape.length, `rank of ${v.name}: [${v.shape}] vs [${got}]`);
    v.shape.forEach((d, i) => {
      if (d !== null) assert.equal(got[i], typeof d === 'number' ? d : sizes[d], `dim ${i} of ${v.name}: [${v.shape}] vs [${got}]`);
    });
  }
  return shaped;
}

test('ranks follow through Expand, Unsqueeze and Concat where dims are unknown (a UNet\'s time projection)', async () => {
  // diffusers' Timesteps: timestep expanded to the batch, unsqueezed, times the frequencies, [cos, sin]
  const b = new GraphBuilder();
  const t = b.input('timestep', 'float32', ['steps']);
  const sample = b.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  const expanded = b.op('Expand', [t, b.shape(sample, 0, 1)]);
  const col = b.unsqueeze(expanded, [1]);
  const args = b.mul(col, b.constF32(new Array(8).fill(0.5), [1, 8]));
  const emb = b.concat([b.op('Cos', [args]), b.op('Sin', [args])], -1);
  const proj = b.matmul(emb, b.weight('w', tensor.f32([16, 64], new Array(16 * 64).fill(0.01))));
  b.output(proj, 'out');
  assert.deepEqual(expanded.shape, [null], 'Expand: the larger of the input\'s rank and the shape\'s length');
  assert.deepEqual(col.shape, [null, 1]);
  assert.deepEqual(args.shape, [null, 8]);
  assert.deepEqual(emb.shape, [null, 16], 'Concat sums the axis and keeps the rest');
  assert.deepEqual(proj.shape, [null, 64]);
  const shaped = await checkAgainstOrt(b.model(), { timestep: f32([1], [3]), sample: f32([2, 4, 2, 2], new Array(32).fill(0)) }, { steps: 1, batch: 2, height: 2, width: 2 });
  assert.ok(shaped >= 7, `${shaped} values shaped`);
});

test('Expand, Concat, Gemm, Slice and Split shapes, known dims kept and unknown ones null', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [3, 1]);
  const y = b.input('y', 'float32', ['b', 12]);
  const target = b.input('target', 'int64', [2]);
  const reshaped = b.input('reshaped', 'int64', [2]);
  const starts = b.input('starts', 'int64', [1]);
  // a constant shape broadcasts; a shape input of known length gives the rank and keeps fixed dims other than 1
  assert.deepEqual(b.op('Expand', [x, b.constI64([2, 1, 4])]).shape, [2, 3, 4]);
  assert.deepEqual(b.op('Expand', [x, target]).shape, [3, null]);
  // a Concat input without a shape (a Reshape to sizes only known at run time) leaves the axis unknown, not the rank
  const free = b.op('Reshape', [y, reshaped]);
  assert.equal(free.shape, undefined);
  assert.deepEqual(b.concat([y, free], 1).shape, ['b', null]);
  assert.deepEqual(b.concat([free, y], 0).shape, [null, 12], 'a fixed dim from any input');
  assert.deepEqual(b.concat([y, y], 1).shape, ['b', 24]);
  assert.deepEqual(b.op('Gemm', [y, b.constF32(new Array(60).fill(0.1), [5, 12])], { transB: 1 }).shape, ['b', 5]);
  assert.deepEqual(b.op('Gemm', [y, b.constF32(new Array(60).fill(0.1), [12, 5])]).shape, ['b', 5]);
  assert.deepEqual(b.slice(y, [2], [-1], [1]).shape, ['b', 9]);
  assert.deepEqual(b.slice(y, [-1], [-1e18], [1], [-2]).shape, ['b', 6], 'negative steps clamp as ONNX says');
  assert.deepEqual(b.slice(y, [20], [30], [1]).shape, ['b', 0]);
  assert.deepEqual(b.op('Slice', [y, starts, b.constI64([12]), b.constI64([1])]).shape, ['b', null], 'a run-time start: that axis unknown');
  assert.deepEqual(b.op('Slice', [y, starts, b.constI64([12])]).shape, [null, null], 'unknown axes: every dim may change');
  const parts = b.split(y, [4, 8], 1);
  assert.deepEqual(parts.map((p) => p.shape), [['b', 4], ['b', 8]]);
  const thirds = b.opN('Split', [y], { axis: 1 }, { outputs: 3 });
  assert.deepEqual(thirds.map((p) => p.shape), [['b', 4], ['b', 4], ['b', 4]], 'equal parts of a known dim');
  const feeds = { x: f32([3, 1], [1, 2, 3]), y: f32([2, 12], new Array(24).fill(1)), target: i64([2], [1, 4]), reshaped: i64([2], [2, 12]), starts: i64([1], [1]) };
  const shaped = await checkAgainstOrt(b.model(), feeds, { b: 2 });
  assert.ok(shaped >= 15, `${shaped} values shaped`);
});

test('contrib ops (com.microsoft) keep the rank they give: gelus, rotary, quantized MatMuls, MultiHeadAttention, skip norms', async () => {
  const ms = { domain: 'com.microsoft' };
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['b', 's', 16]);
  const xq = b.input('xq', 'uint8', ['b', 's', 16]);
  const kv = b.input('kv', 'float32', ['b', 'l', 16]);
  const v = b.input('v', 'float32', ['b', 'l', 8]);
  const fill = (n: number, k = 0.01) => Array.from({ length: n }, (_, i) => ((i % 7) - 3) * k);
  assert.deepEqual(b.op('QuickGelu', [x], {}, ms).shape, ['b', 's', 16]);
  assert.deepEqual(b.op('FastGelu', [x, b.constF32(fill(16))], {}, ms).shape, ['b', 's', 16]);
  assert.deepEqual(b.op('BiasGelu', [x, b.constF32(fill(16))], {}, ms).shape, ['b', 's', 16]);
  assert.deepEqual(b.op('Gelu', [x], {}, ms).shape, ['b', 's', 16]);
  // x as [B, S, H·D] with caches [S_max, D/2], as the rotary fusion emits it
  const rot = b.op('RotaryEmbedding', [x, b.constI64([0], [1]), b.constF32(fill(32 * 4), [32, 4]), b.constF32(fill(32 * 4), [32, 4])], { interleaved: 1, num_heads: 2 }, ms);
  assert.deepEqual(rot.shape, ['b', 's', 16]);
  // MatMulNBits: A [..., K] times a 4-bit [K, N] packed as [N, K/32, 16]
  const nbits = b.op('MatMulNBits', [x, b.constant(new InMemoryTensor('uint8', [24, 1, 8], Uint8Array.from({ length: 24 * 8 }, (_, i) => (i * 37) % 256))), b.constF32(fill(24, 0.1).map((y) => y + 0.5))], { K: 16, N: 24, bits: 4, block_size: 16 }, ms);
  assert.deepEqual(nbits.shape, ['b', 's', 24], 'A\'s rank, last dim N');
  const w8 = b.constant(new InMemoryTensor('int8', [16, 24], Int8Array.from({ length: 16 * 24 }, (_, i) => (i % 11) - 5)));
  assert.deepEqual(b.op('DynamicQuantizeMatMul', [x, w8, b.constF32([0.02])], {}, ms).shape, ['b', 's', 24]);
  assert.deepEqual(b.op('MatMulIntegerToFloat', [xq, w8, b.constF32([0.1]), b.constF32([0.02])], {}, ms).shape, ['b', 's', 24]);
  // query [B, S, D], value [B, L, D_v]: [B, S, D_v]
  assert.deepEqual(b.op('MultiHeadAttention', [x, kv, v], { num_heads: 2 }, ms).shape, ['b', 's', 8]);
  // output 0 of a norm with its other outputs (mean, inverse std-dev, the sum x + skip) asked for
  const skipped = b.opN('SkipLayerNormalization', [x, x, b.constF32(fill(16)), b.constF32(fill(16))], {}, { ...ms, outputs: 4 });
  assert.deepEqual(skipped[0]!.shape, ['b', 's', 16]);
  const [simplified] = b.opN('SkipSimplifiedLayerNormalization', [x, x, b.constF32(fill(16))], {}, { ...ms, outputs: 1 });
  assert.deepEqual(simplified!.shape, ['b', 's', 16]);
  const feeds = {
    x: f32([2, 3, 16], fill(96)),
    xq: { dtype: 'uint8', dims: [2, 3, 16], data: Uint8Array.from(fill(96), (_, i) => i * 5 % 256) } as HostTensor,
    kv: f32([2, 5, 16], fill(160)),
    v: f32([2, 5, 8], fill(80)),
  };
  const shaped = await checkAgainstOrt(b.model({ '': 17, 'com.microsoft': 1 }), feeds, { b: 2, s: 3, l: 5 });
  assert.ok(shaped >= 11, `${shaped} values shaped`);
});

test('Reduce*, Unsqueeze, Squeeze, Reshape to a constant shape, Gemm, Max and If: the ranks where dims are unknown', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['b', 's', 8]);
  const axes = b.input('axes', 'int64', [1]);
  const target = b.input('target', 'int64', [2]);
  assert.deepEqual(b.op('ReduceMean', [x], { axes: [-1] }).shape, ['b', 's', 1], 'keepdims by default');
  assert.deepEqual(b.op('ReduceSum', [x, b.constI64([1])], { keepdims: 0 }).shape, ['b', 8]);
  assert.deepEqual(b.op('ReduceSum', [x, axes]).shape, [null, null, null], 'axes known at run time: the rank only');
  assert.equal(b.op('ReduceSum', [x, axes], { keepdims: 0 }).shape, undefined, 'nor the rank without keepdims');
  assert.deepEqual(b.op('ReduceMax', [x], { keepdims: 0 }).shape, [], 'no axes: all of them');
  assert.deepEqual(b.op('ReduceMin', [x]).shape, [1, 1, 1]);
  const un = b.unsqueeze(x, [0, -2]);
  assert.deepEqual(un.shape, [1, 'b', 's', 1, 8]);
  assert.deepEqual(b.op('Squeeze', [un, b.constI64([0, 3])]).shape, ['b', 's', 8]);
  // a value without a shape (a Reshape to sizes known at run time): a constant target still gives the rank
  const free = b.op('Reshape', [x, target]);
  assert.equal(free.shape, undefined);
  assert.deepEqual(b.op('Reshape', [free, b.constI64([0, 2, -1])]).shape, [null, 2, null]);
  assert.deepEqual(b.op('Gemm', [free, b.constF32(new Array(40).fill(0.1), [5, 8])], { transB: 1 }).shape, [null, 5], 'Gemm is 2-D');
  assert.deepEqual(b.op('Max', [x, b.constF32([1], [1, 1, 1]), b.constF32(new Array(8).fill(0), [8])]).shape, ['b', 's', 8], 'every input of Max broadcasts');
  const y = b.op('Relu', [b.op('ReduceMean', [x], { axes: [1] })]);
  b.output(b.op('Neg', [y]), 'out');
  const model = b.model();
  // a cacher's If: the then-branch computes y, the else-branch returns a cached one
  const r = gateRegion(model.graph, [y.producer!], { replacement: newInputs(model.graph, () => 'cached', () => ['b', 1, 8]) });
  for (const o of r.outputs) o.shape = undefined;
  inferDtypes(model.graph);
  assert.deepEqual(r.outputs[0]!.shape, ['b', 1, 8], 'If outputs: the then-branch\'s');
  const feeds = { x: f32([2, 3, 8], new Array(48).fill(0.5)), axes: i64([1], [1]), target: i64([2], [6, 8]), cached: f32([2, 1, 8], new Array(16).fill(0)), cond: { dtype: 'bool', dims: [], data: Uint8Array.of(1) } as HostTensor };
  const shaped = await checkAgainstOrt(model, feeds, { b: 2, s: 3 });
  assert.ok(shaped >= 12, `${shaped} values shaped`);
});
