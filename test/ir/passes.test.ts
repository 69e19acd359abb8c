import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Graph, Node, Value } from '../../src/ir/graph.js';
import { tensor } from '../../src/core/tensor.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { topologicalSort } from '../../src/ir/passes/topological-sort.js';
import { uniqueNames } from '../../src/ir/passes/unique-names.js';
import { runPasses, PassError, type Pass } from '../../src/ir/passes/pass.js';
import { extractSubgraph } from '../../src/ir/extract.js';
import { Session, f32 } from '../../src/runtime/session.js';

function chain() {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2]);
  const a = b.scope('block.0', () => b.op('Relu', [x]));
  const c = b.scope('block.1', () => b.add(a, b.weight('bias', tensor.f32([2], [1, 2]))));
  const dead = b.op('Neg', [a]);
  b.op('Abs', [dead]);
  b.output(b.op('Sigmoid', [c]), 'y');
  return { b, x, a, c, model: b.model() };
}

test('builder names nodes and weights by module path', () => {
  const { model } = chain();
  const names = model.graph.nodeList().map((n) => n.name);
  assert.deepEqual(names.slice(0, 2), ['/block.0/Relu', '/block.1/Add']);
  assert.ok(model.graph.initializers.has('block.1.bias'));
  assert.equal(model.graph.outputs[0]!.name, 'y');
});

test('values know their producer and uses; replaceAllUses rewires them', () => {
  const { model, a, c } = chain();
  const relu = a.producer!;
  assert.equal(relu.opType, 'Relu');
  assert.equal(a.uses.size, 2);
  const g = model.graph;
  const n = new Node('Identity', 'id');
  n.inputs.push(g.inputs[0]!);
  n.outputs.push(new Value('x_copy'));
  g.insert(n, relu);
  g.replaceAllUses(a, n.outputs[0]!);
  assert.equal(a.uses.size, 0);
  assert.equal(c.producer!.inputs[0], n.outputs[0]);
  assert.equal(g.nodeList()[0], n);
});

test('removing nodes while iterating is safe', () => {
  const { model } = chain();
  const g = model.graph;
  for (const n of g.nodes()) if (n.opType === 'Abs') g.remove(n);
  assert.ok(!g.nodeList().some((n) => n.opType === 'Abs'));
});

test('dead-code elimination removes unreachable nodes and initializers', async () => {
  const { model } = chain();
  model.graph.addInitializer('unused', tensor.f32([1], [0]));
  const r = runPasses(model, [deadCodeElimination]);
  assert.ok(r.changed);
  assert.deepEqual(r.model.graph.nodeList().map((n) => n.opType), ['Relu', 'Add', 'Sigmoid']);
  assert.ok(!r.model.graph.initializers.has('unused'));
  assert.equal(runPasses(r.model, [deadCodeElimination]).changed, false);
  const out = await (await Session.create(r.model)).run({ x: f32([2], [-1, 1]) });
  assert.ok(Math.abs((out.outputs.y!.data as Float32Array)[1]! - 1 / (1 + Math.exp(-3))) < 1e-6);
});

test('topological sort orders nodes after their producers', async () => {
  const { model } = chain();
  const g = model.graph;
  const nodes = g.nodeList();
  for (const n of nodes) g.remove(n, true);
  for (const n of nodes.reverse()) g.insert(n);
  const r = topologicalSort.run(model);
  assert.ok(r.changed);
  const order = g.nodeList();
  for (const [i, n] of order.entries()) for (const v of n.inputs) if (v?.producer) assert.ok(order.indexOf(v.producer) < i);
  await Session.create(model);
});

test('unique names renames clashes', () => {
  const { model } = chain();
  const ns = model.graph.nodeList();
  ns[1]!.name = ns[0]!.name;
  ns[1]!.outputs[0]!.name = ns[0]!.outputs[0]!.name;
  assert.ok(uniqueNames.run(model).changed);
  const names = model.graph.nodeList().map((n) => n.name);
  assert.equal(new Set(names).size, names.length);
  assert.equal(uniqueNames.run(model).changed, false);
});

test('extract the subgraph between two tensors', async () => {
  const { model, a, c } = chain();
  const sub = extractSubgraph(model, [a.name], [c.name]);
  assert.deepEqual(sub.graph.nodeList().map((n) => n.opType), ['Add']);
  assert.equal(sub.graph.inputs[0]!.name, a.name);
  sub.graph.inputs[0]!.dtype = 'float32';
  sub.graph.inputs[0]!.shape = [2];
  const out = await (await Session.create(sub)).run({ [a.name]: f32([2], [5, 6]) });
  assert.deepEqual([...(out.outputs[c.name]!.data as Float32Array)], [6, 8]);
  assert.throws(() => extractSubgraph(model, [], [c.name]), /depends on graph input/);
});

test('a pass sequence reports which pass failed', () => {
  const { model } = chain();
  const broken: Pass = { name: 'broken', run() { throw new Error('boom'); } };
  assert.throws(() => runPasses(model, [deadCodeElimination, broken]), (e: unknown) => e instanceof PassError && e.pass === 'broken' && /boom/.test(e.message));
});

test('a graph output that is an input gets its own Identity', () => {
  const b = new GraphBuilder(new Graph('g'));
  const x = b.input('x', 'float32', [1]);
  const y = b.output(x, 'y');
  assert.equal(y.producer!.opType, 'Identity');
});

test('replaceNode swaps a node for a subgraph and keeps the output name', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2]);
  const y = b.output(b.op('Relu', [x]), 'y');
  const m = b.model();
  const relu = y.producer!;
  // Relu(x) = Max(x, 0)
  const zero = new Node('Constant', '/relu_as_max/zero');
  zero.attributes.set('value', { type: 'tensor', value: tensor.f32([1], [0]) });
  zero.outputs.push(new Value('zero'));
  const max = new Node('Max', '/relu_as_max/Max');
  max.inputs.push(x, zero.outputs[0]!);
  max.outputs.push(new Value('max_out'));
  m.graph.replaceNode(relu, [zero, max], [max.outputs[0]!]);
  assert.deepEqual(m.graph.nodeList().map((n) => n.opType), ['Constant', 'Max']);
  assert.equal(m.graph.outputs[0]!.name, 'y');
  const out = await (await Session.create(m)).run({ x: f32([2], [-1, 3]) });
  assert.deepEqual([...(out.outputs.y!.data as Float32Array)], [0, 3]);
});
