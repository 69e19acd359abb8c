import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Graph, allNodes } from '../../src/ir/graph.js';
import { Session } from '../../src/runtime/session.js';
import { FIXTURE_COMPONENTS, SIZES, buildFixture, feedsFor } from './fixture-builds.js';

test('every value of every built fixture graph has a dtype', () => {
  for (const comp of FIXTURE_COMPONENTS) {
    for (const [key, model] of buildFixture(comp)) {
      const g = model.graph;
      for (const v of [...g.inputs, ...g.outputs, ...g.initializers.values()]) assert.ok(v.dtype, `${key}: ${v.name}`);
      let shaped = 0;
      let total = 0;
      for (const n of allNodes(g)) {
        for (const o of n.outputs) {
          assert.ok(o.dtype, `${key}: output ${o.name} of ${n.opType} ${n.name} has no dtype`);
          total++;
          if (o.shape) shaped++;
        }
      }
      assert.ok(shaped > total / 4, `${key}: shapes known for ${shaped}/${total} values`);
    }
  }
});

test('inferred dtypes and shapes are what onnxruntime computes', async () => {
  // SDXL needs config-derived sizes for its added conditions; its layers are the SD 1.5 ones
  for (const comp of FIXTURE_COMPONENTS.filter((c) => c !== 'sdxl-unet-tiny')) {
    for (const [key, model] of buildFixture(comp)) {
      const declared = new Set(model.graph.outputs);
      const inner = [...model.graph.nodes()].flatMap((n) => n.outputs).filter((v) => !declared.has(v));
      model.graph.outputs.push(...inner);
      const s = await Session.create(model, { optimizationLevel: 'disabled' });
      const { outputs } = await s.run(feedsFor(model));
      await s.release();
      let checkedDims = 0;
      for (const v of inner) {
        const got = outputs[v.name]!;
        assert.equal(got.dtype, v.dtype, `${key}: dtype of ${v.name}`);
        if (!v.shape) continue;
        assert.equal(got.dims.length, v.shape.length, `${key}: rank of ${v.name}: [${v.shape}] vs [${got.dims}]`);
        v.shape.forEach((d, i) => {
          if (d === null) return;
          const want = typeof d === 'number' ? d : SIZES[d];
          assert.equal(got.dims[i], want, `${key}: dim ${i} of ${v.name}: [${v.shape}] vs [${got.dims}]`);
          checkedDims++;
        });
      }
      assert.ok(checkedDims > 0, key);
    }
  }
});

test('builder ops get dtypes from their inputs, attributes and branches', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 8]);
  const ids = b.input('ids', 'int64', ['batch', 3]);
  const cond = b.input('cond', 'bool', []);
  assert.deepEqual([b.shape(x).dtype, b.shape(x).shape], ['int64', [2]]);
  assert.equal(b.op('Equal', [ids, b.constI64(1)]).dtype, 'bool');
  assert.equal(b.cast(ids, 1).dtype, 'float32');
  const y = b.reshape(b.matmul(x, b.constF32(Array(32).fill(1), [8, 4])), [0, 2, 2]);
  assert.deepEqual([y.dtype, y.shape], ['float32', ['batch', 2, 2]]);
  const then = new GraphBuilder(new Graph('then'));
  then.output(then.op('Neg', [y]));
  const els = new GraphBuilder(new Graph('else'));
  els.output(els.op('Identity', [y]));
  const r = b.op('If', [cond], { then_branch: then.graph, else_branch: els.graph });
  assert.deepEqual([r.dtype, r.shape], ['float32', ['batch', 2, 2]]);
  assert.equal(b.op('MatMulNBits', [x], {}, { domain: 'com.microsoft', dtype: 'float16' }).dtype, 'float16');
});
