import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/core/tensor.js';
import { toFloat32 } from '../../src/core/float.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { linearOf } from '../../src/algorithms/quantizers/linear.js';

test('a linear layer: MatMul by a constant with its bias Add, or a Gemm that is one (transB weights transposed); other Gemms are not', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3]);
  const w = b.weight('w', tensor.f32([3, 2], [1, 2, 3, 4, 5, 6]));
  const bias = b.weight('bias', tensor.f32([2], [0.5, -0.5]));
  const mm = b.matmul(x, w);
  b.op('Add', [mm, bias]);
  const mmLinear = linearOf(mm.producer!)!;
  assert.equal(mmLinear.source, w);
  assert.equal(mmLinear.bias, bias);
  assert.ok(mmLinear.add);
  // torch.onnx's Linear on a 2-D input: Gemm(x, W[N, K], b, transB=1)
  const wt = b.weight('wt', tensor.f32([2, 3], [1, 3, 5, 2, 4, 6]));
  const gemm = b.op('Gemm', [x, wt, bias], { transB: 1 });
  const g = linearOf(gemm.producer!)!;
  assert.deepEqual(g.weight.shape, [3, 2]);
  assert.deepEqual([...toFloat32(g.weight)], [1, 2, 3, 4, 5, 6], 'the [K, N] weight the MatMul form holds');
  assert.equal(g.source, wt);
  assert.equal(g.bias, bias);
  assert.equal(g.add, undefined);
  assert.equal(linearOf(b.op('Gemm', [x, w], {}).producer!)?.source, w, 'no C, no transB');
  for (const attrs of [{ alpha: 2 }, { transA: 1 }, { beta: 0.5 }]) assert.equal(linearOf(b.op('Gemm', [x, wt, bias], { ...attrs, transB: 1 }).producer!), undefined, JSON.stringify(attrs));
  assert.equal(linearOf(b.op('Gemm', [x, wt, b.weight('c2', tensor.f32([1, 2], [0, 0]))], { transB: 1 }).producer!), undefined, 'a [1, N] C');
  assert.equal(linearOf(b.op('Gemm', [x, b.input('dyn', 'float32', [2, 3])], { transB: 1 }).producer!), undefined, 'a weight computed at run time');
});
