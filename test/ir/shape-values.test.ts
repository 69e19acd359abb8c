import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { tensor } from '../../src/core/tensor.js';
import { inferDtypes } from '../../src/ir/type-inference.js';
import { dimAt, shapeValues } from '../../src/ir/shape-values.js';
import { Session } from '../../src/runtime/session.js';

/** torch.onnx's `x.view(batch, -1, heads, x.shape[-1] // heads)` and `1 / √√head_dim` scale, on [B, S, 16] projections. */
function exported(heads: number) {
  const b = new GraphBuilder();
  const a = b.input('a', 'float32', ['batch', 'seq', 8]);
  const x = b.matmul(a, b.weight('w', tensor.f32([8, 16], new Array(128).fill(0.1))));
  const batch = b.unsqueeze(b.op('Gather', [b.op('Shape', [a]), b.constI64(0, [])], { axis: 0 }), [0]);
  const inner = b.op('Gather', [b.op('Shape', [x]), b.constI64(-1, [])], { axis: 0 });
  const headDim = b.unsqueeze(b.op('Div', [inner, b.constI64(heads, [])]), [0]);
  const target = b.op('Concat', [batch, b.constI64([-1]), b.constI64([heads]), headDim], { axis: 0 });
  const split = b.op('Transpose', [b.op('Reshape', [x, target]), ], { perm: [0, 2, 1, 3] });
  const last = b.op('Slice', [b.op('Shape', [split]), b.constI64([-1]), b.constI64([2 ** 62])]);
  const scale = b.op('Sqrt', [b.op('Cast', [b.op('Div', [b.constF32(1, []), b.op('Sqrt', [b.op('Cast', [last], { to: 1 })])])], { to: 1 })]);
  b.output(split, 'split');
  b.output(scale, 'scale');
  inferDtypes(b.graph);
  return { b, x, target, split, scale, inner };
}

test('shape values: an exporter\'s run-time view target and head-size scale, worked out statically', async () => {
  const { b, target, split, scale, inner } = exported(4);
  assert.deepEqual(shapeValues(inner), [16], 'the projection\'s last dim, from its [8, 16] weight');
  assert.deepEqual(shapeValues(target), ['batch', -1, 4, 4]);
  assert.equal(dimAt(split, -1), 4);
  assert.equal(split.shape?.length, 4, 'the type inference reads the computed target\'s length as the rank');
  const [s] = shapeValues(scale)! as number[];
  assert.ok(Math.abs(s! - 4 ** -0.25) < 1e-12, `${s}`);
  // what onnxruntime computes from the same graph
  const sess = await Session.create(b.model(), { threads: 1 });
  const r = await sess.run({ a: { dtype: 'float32', dims: [2, 3, 8], data: new Float32Array(48).fill(1) } });
  await sess.release();
  assert.deepEqual(r.outputs.split!.dims, [2, 4, 3, 4]);
  assert.ok(Math.abs((r.outputs.scale!.data as Float32Array)[0]! - s!) < 1e-6);
});

test('shape values: integer division truncates as ONNX does; what is not static stays unknown', () => {
  const { inner, target } = exported(3);
  assert.deepEqual(shapeValues(target), ['batch', -1, 3, 5], '16 / 3 in int64');
  const b = new GraphBuilder();
  const a = b.input('a', 'float32', ['batch', 'seq', 8]);
  assert.deepEqual(shapeValues(b.op('Gather', [b.op('Shape', [a]), b.constI64(1, [])], { axis: 0 })), [undefined], 'a symbolic dim');
  assert.deepEqual(shapeValues(b.op('Gather', [b.op('Shape', [a]), b.constI64(2, [])], { axis: 0 })), [8]);
  assert.equal(shapeValues(b.op('Relu', [a])), undefined);
  assert.equal(shapeValues(inner.producer!.inputs[0]), undefined, 'a whole Shape is no short vector of known entries');
});

test('a computed Reshape target gives the rank, and only its whole-number entries as dims', () => {
  const b = new GraphBuilder();
  const a = b.input('a', 'float32', ['batch', 'seq', 8]);
  const half = b.op('Cast', [b.op('Div', [b.constF32(5, []), b.constF32(2, [])])], { to: 1 }); // 2.5: no dim
  const target = b.op('Concat', [b.constI64([0]), b.constI64([-1]), b.unsqueeze(half, [0]), b.constI64([2])], { axis: 0 });
  const y = b.op('Reshape', [a, target]);
  inferDtypes(b.graph);
  assert.deepEqual(shapeValues(target), [0, -1, 2.5, 2]);
  assert.deepEqual(y.shape, ['batch', null, null, 2]);
});
