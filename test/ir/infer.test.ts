import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { allNodes } from '../../src/ir/graph.js';
import { tensor } from '../../src/core/tensor.js';
import { inferDtypes, outputDtype } from '../../src/ir/type-inference.js';
import { buildFluxTransformer2DModel } from '../../src/models/flux-transformer-2d.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
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
