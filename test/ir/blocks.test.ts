import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ModelFormatError } from '../../src/errors.js';
import { tensor } from '../../src/core/tensor.js';
import { Graph, Model, Node, Value } from '../../src/ir/graph.js';
import { BLOCKS_KEY, deriveBlocks, readBlocks, recordBlocks, refreshBlocks } from '../../src/ir/blocks.js';

/** Two blocks named as PyTorch's TorchScript exporter names them, without any metadata. */
function torchScriptGraph(): Model {
  const g = new Graph();
  const add = (op: string, name: string, inputs: Value[], out: string, attrs: [string, Node['attributes'] extends Map<string, infer A> ? A : never][] = []) => {
    const n = new Node(op, name);
    for (const [k, a] of attrs) n.attributes.set(k, a);
    n.inputs.push(...inputs);
    const v = new Value(out, 'float32', [1, 4]);
    n.outputs.push(v);
    g.insert(n);
    return v;
  };
  const hidden = new Value('hidden_states', 'float32', [1, 4]);
  const temb = new Value('temb', 'float32', [1, 4]);
  g.inputs.push(hidden, temb);
  const w = (name: string) => g.addInitializer(name, tensor.f32([4, 4], Array.from({ length: 16 }, (_, i) => i / 16)));
  const cst = (name: string, out: string) => add('Constant', name, [], out, [['value', { type: 'tensor', value: tensor.f32([], [0.5]) }]]);

  const x0 = add('MatMul', '/x_embedder/MatMul', [hidden, w('x_embedder.weight')], '/x_embedder/MatMul_output_0');
  const rootConst = cst('Constant_12', 'onnx::Mul_12');
  // block 0: a scoped Constant, a weight named as TorchScript names transposed weights
  const c3 = cst('/transformer_blocks.0/Constant_3', '/transformer_blocks.0/Constant_3_output_0');
  const folded = add('Transpose', '/transformer_blocks.0/attn/Transpose', [w('onnx::MatMul_123')], 'onnx::MatMul_300');
  const q0 = add('MatMul', '/transformer_blocks.0/attn/to_q/MatMul', [x0, folded], '/transformer_blocks.0/attn/to_q/MatMul_output_0');
  const m0 = add('Mul', '/transformer_blocks.0/Mul', [q0, temb], '/transformer_blocks.0/Mul_output_0');
  const s0 = add('Mul', '/transformer_blocks.0/Mul_1', [m0, c3], '/transformer_blocks.0/Mul_1_output_0');
  const b0 = add('Add', '/transformer_blocks.0/Add_1', [x0, s0], 'onnx::MatMul_201');
  // block 1 reads a root constant and the first block's output
  const q1 = add('MatMul', '/transformer_blocks.1/attn/to_q/MatMul', [b0, w('onnx::MatMul_124')], '/transformer_blocks.1/attn/to_q/MatMul_output_0');
  const m1 = add('Mul', '/transformer_blocks.1/Mul', [q1, rootConst], '/transformer_blocks.1/Mul_output_0');
  const t1 = add('Add', '/transformer_blocks.1/Add', [m1, temb], '/transformer_blocks.1/Add_output_0');
  const b1 = add('Add', '/transformer_blocks.1/Add_1', [b0, t1], '/transformer_blocks.1/Add_1_output_0');
  const out = add('Concat', '/Concat', [b1, x0], 'out', [['axis', { type: 'int', value: 0 }]]);
  g.outputs.push(out);
  return new Model(g);
}

test('blocks derive from TorchScript names: scoped constants and weights are not inputs, root nodes belong to no block', () => {
  const m = torchScriptGraph();
  const blocks = deriveBlocks(m, ['transformer_blocks.*', 'transformer_blocks.*.attn']);
  assert.deepEqual(blocks, [
    { name: 'transformer_blocks.0', pattern: 'transformer_blocks.*', index: 0, inputs: ['/x_embedder/MatMul_output_0', 'temb'], shared: 1, outputs: ['onnx::MatMul_201'], nodes: 6 },
    { name: 'transformer_blocks.1', pattern: 'transformer_blocks.*', index: 1, inputs: ['onnx::MatMul_201', 'temb'], shared: 1, outputs: ['/transformer_blocks.1/Add_1_output_0'], nodes: 4 },
    { name: 'transformer_blocks.0.attn', pattern: 'transformer_blocks.*.attn', index: 0, inputs: ['/x_embedder/MatMul_output_0'], shared: 0, outputs: ['/transformer_blocks.0/attn/to_q/MatMul_output_0'], nodes: 2 },
    { name: 'transformer_blocks.1.attn', pattern: 'transformer_blocks.*.attn', index: 1, inputs: ['onnx::MatMul_201'], shared: 0, outputs: ['/transformer_blocks.1/attn/to_q/MatMul_output_0'], nodes: 1 },
  ]);
  assert.deepEqual(deriveBlocks(m, ['down_blocks.*']), []);
});

test('a value a block\'s subgraph reads from outside is an input; a graph output made inside is an output', () => {
  const m = torchScriptGraph();
  const g = m.graph;
  const body = new Graph('then');
  const temb = g.inputs[1]!;
  const n = new Node('Identity', '/transformer_blocks.1/Identity');
  n.inputs.push(temb);
  const inner = new Value('inner', 'float32', [1, 4]);
  n.outputs.push(inner);
  body.insert(n);
  body.outputs.push(inner);
  const cond = new Value('cond', 'bool', []);
  g.inputs.push(cond);
  const iff = new Node('If', '/transformer_blocks.0/If');
  iff.attributes.set('then_branch', { type: 'graph', value: body });
  iff.attributes.set('else_branch', { type: 'graph', value: body });
  iff.inputs.push(cond);
  const r = new Value('/transformer_blocks.0/If_output_0', 'float32', [1, 4]);
  iff.outputs.push(r);
  g.insert(iff);
  g.outputs.push(r);
  const [b0] = deriveBlocks(m, ['transformer_blocks.*']);
  // own inputs by the output they reach (cond → the If's result), then the shared temb
  assert.deepEqual(b0!.inputs, ['/x_embedder/MatMul_output_0', 'cond', 'temb']);
  assert.equal(b0!.shared, 1);
  assert.deepEqual(b0!.outputs, ['onnx::MatMul_201', '/transformer_blocks.0/If_output_0']);
});

test('stored records: read back, refreshed after a rename, stale or malformed ones fail with a code', () => {
  const m = torchScriptGraph();
  assert.equal(readBlocks(m), undefined);
  const rec = recordBlocks(m, ['transformer_blocks.*']);
  assert.deepEqual(readBlocks(m), rec);
  const v = m.graph.values().get('onnx::MatMul_201')!;
  v.name = 'renamed';
  assert.throws(() => readBlocks(m), (e: unknown) => e instanceof ModelFormatError && e.code === 'BLOCKS_STALE' && e.message.includes('onnx::MatMul_201'));
  refreshBlocks(m);
  assert.equal(readBlocks(m)![0]!.outputs[0], 'renamed');
  for (const bad of ['{', '{"version":2,"patterns":[],"blocks":[]}', '{"version":1,"patterns":[],"blocks":[{"name":"a"}]}']) {
    m.metadataProps.set(BLOCKS_KEY, bad);
    assert.throws(() => readBlocks(m), (e: unknown) => e instanceof ModelFormatError && e.code === 'BLOCKS_METADATA', bad);
  }
});
