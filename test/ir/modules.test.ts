import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Graph, Node, Value } from '../../src/ir/graph.js';
import { decodeModel, encodeModel } from '../../src/ir/serde.js';
import {
  NAME_SCOPES_KEY, formatNameScopes, matchGlob, modulePath, modulePathFromName, parseNameScopes, selectNodes, setModulePath,
} from '../../src/ir/modules.js';

test('name_scopes are written and read as the dynamo exporter writes them', () => {
  const n = new Node('MatMul', '/transformer_blocks.3/attn/to_q/MatMul');
  setModulePath(n, 'transformer_blocks.3.attn.to_q');
  assert.equal(n.metadata.get(NAME_SCOPES_KEY), "['', 'transformer_blocks.3', 'transformer_blocks.3.attn', 'transformer_blocks.3.attn.to_q', 'MatMul']");
  assert.equal(modulePath(n), 'transformer_blocks.3.attn.to_q');
  // a real dynamo export's entry: the last item is the FX node name, not a module
  const d = new Node('MatMul', 'node_linear_8');
  d.metadata.set(NAME_SCOPES_KEY, "['', 'blocks.2', 'blocks.2.mlp', 'blocks.2.mlp.fc1', 'linear_8']");
  assert.equal(modulePath(d), 'blocks.2.mlp.fc1');
  d.metadata.set(NAME_SCOPES_KEY, "['', 'add_3']");
  assert.equal(modulePath(d), '');
  // quotes and backslashes survive
  const odd = ['', "it's", 'a\\b', 'x"y'];
  assert.deepEqual(parseNameScopes(formatNameScopes(odd)), odd);
  assert.deepEqual(parseNameScopes('["", "a", \'b\',]'), ['', 'a', 'b']);
  assert.deepEqual(parseNameScopes('[]'), []);
  for (const bad of ['', 'a', "['a'", "['a' 'b']", "['a'] x", '[a]']) assert.equal(parseNameScopes(bad), undefined, bad);
  // malformed metadata falls back to the node name
  const m = new Node('Conv', '/down_blocks.0/resnets.1/conv1/Conv');
  m.metadata.set(NAME_SCOPES_KEY, 'garbage');
  assert.equal(modulePath(m), 'down_blocks.0.resnets.1.conv1');
});

test('module paths derive from TorchScript-style node names', () => {
  const cases: [string, string][] = [
    ['/transformer_blocks.3/attn/to_q/MatMul', 'transformer_blocks.3.attn.to_q'],
    ['/down_blocks.0/resnets.0/conv1/Conv', 'down_blocks.0.resnets.0.conv1'],
    ['/text_model/encoder/layers.0/self_attn/q_proj/MatMul', 'text_model.encoder.layers.0.self_attn.q_proj'],
    ['/transformer_blocks.0/Add_1', 'transformer_blocks.0'],
    ['/transformer_blocks.0/Constant_3', 'transformer_blocks.0'],
    ['/Concat', ''],
    ['Constant_12', ''],
    ['node_MatMul_3', ''],
    ['', ''],
  ];
  for (const [name, path] of cases) assert.equal(modulePathFromName(name), path, name);
});

test('globs follow fnmatch: * crosses dots, ? is one character, [..] a class', () => {
  const yes: [string, string][] = [
    ['transformer_blocks.3.norm1', '*norm*'],
    ['norm_out', '*norm*'],
    ['transformer_blocks.3.attn', 'transformer_blocks.*.attn'],
    ['transformer_blocks.3.x.attn', 'transformer_blocks.*.attn'],
    ['transformer_blocks.3', 'transformer_blocks.?'],
    ['transformer_blocks.3', 'transformer_blocks.[0-3]'],
    ['transformer_blocks.4', 'transformer_blocks.[!0-3]'],
    ['a+b(c)', 'a+b(c)'],
    ['', '*'],
  ];
  const no: [string, string][] = [
    ['transformer_blocks.3.attn.to_q', 'transformer_blocks.*.attn'],
    ['transformer_blocks.12', 'transformer_blocks.?'],
    ['transformer_blocks.4', 'transformer_blocks.[0-3]'],
    ['transformer_blocks.3', 'transformer_blocks.[!0-3]'],
    ['transformerXblocks', 'transformer.blocks'],
    ['Norm', '*norm*'],
  ];
  for (const [p, g] of yes) assert.ok(matchGlob(p, g), `${g} should match ${p}`);
  for (const [p, g] of no) assert.ok(!matchGlob(p, g), `${g} should not match ${p}`);
});

/** A graph with TorchScript exporter names and no metadata, as Optimum's exports look. */
function torchScriptStyle(): Graph {
  const g = new Graph();
  const x = new Value('hidden_states', 'float32', [1, 4]);
  g.inputs.push(x);
  let prev = x;
  const names = [
    '/transformer_blocks.0/norm1/LayerNormalization',
    '/transformer_blocks.0/attn/to_q/MatMul',
    '/transformer_blocks.0/attn/to_k/MatMul',
    '/transformer_blocks.0/Add_1',
    '/transformer_blocks.1/ff/net.0/proj/MatMul',
    '/transformer_blocks.10/attn/to_q/MatMul',
    '/norm_out/LayerNormalization',
    '/Concat',
  ];
  for (const [i, name] of names.entries()) {
    const n = new Node('Identity', name);
    n.inputs.push(prev);
    const out = new Value(`onnx::MatMul_${100 + i}`);
    n.outputs.push(out);
    g.insert(n);
    prev = out;
  }
  g.outputs.push(prev);
  return g;
}

test('selectNodes picks modules and everything inside them, include then exclude', () => {
  const g = torchScriptStyle();
  const names = (sel: Parameters<typeof selectNodes>[1]) => selectNodes(g, sel).map((n) => n.name);
  assert.deepEqual(names({ include: ['transformer_blocks.*.attn'] }), [
    '/transformer_blocks.0/attn/to_q/MatMul', '/transformer_blocks.0/attn/to_k/MatMul', '/transformer_blocks.10/attn/to_q/MatMul',
  ]);
  assert.deepEqual(names({ include: ['transformer_blocks.1'] }), ['/transformer_blocks.1/ff/net.0/proj/MatMul']);
  assert.deepEqual(names({ include: ['*norm*'] }), ['/transformer_blocks.0/norm1/LayerNormalization', '/norm_out/LayerNormalization']);
  assert.deepEqual(names({ exclude: ['*norm*', 'transformer_blocks.?'] }), ['/transformer_blocks.10/attn/to_q/MatMul', '/Concat']);
  assert.deepEqual(names({ include: ['transformer_blocks.0'], exclude: ['*.attn.*'] }), [
    '/transformer_blocks.0/norm1/LayerNormalization', '/transformer_blocks.0/Add_1',
  ]);
  assert.equal(names({}).length, 8);
});

test('the builder records every node\'s module path, and it survives encode/decode and renaming', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3]);
  const y = b.scope('down_blocks.0', () => b.scope('resnets', () => b.scope(1, () => b.scope('conv1', () => b.add(x, b.constF32(1))))));
  const z = b.scope('mid_block', () => b.mul(y, y));
  b.output(b.op('Neg', [z]), 'out');
  const m = decodeModel(encodeModel(b.model()));
  const got = m.graph.nodeList().map((n) => [n.name, modulePath(n)]);
  assert.deepEqual(got, [
    ['/down_blocks.0/resnets/1/conv1/Constant', 'down_blocks.0.resnets.1.conv1'],
    ['/down_blocks.0/resnets/1/conv1/Add', 'down_blocks.0.resnets.1.conv1'],
    ['/mid_block/Mul', 'mid_block'],
    ['/Neg', ''],
  ]);
  for (const n of m.graph.nodes()) {
    assert.equal(modulePath(n), modulePathFromName(n.name), n.name);
    n.name = `renamed_${n.opType}`;
  }
  assert.deepEqual(m.graph.nodeList().map(modulePath), ['down_blocks.0.resnets.1.conv1', 'down_blocks.0.resnets.1.conv1', 'mid_block', '']);
});
