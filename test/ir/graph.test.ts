import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, Model, Node, Value } from '../../src/ir/graph.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { topologicalSort } from '../../src/ir/passes/topological-sort.js';

/** x -> n0 -> n1 -> … -> n{k-1}: a chain of unary nodes named n0…, returns the graph and nodes. */
function chainGraph(k: number): { g: Graph; nodes: Node[] } {
  const g = new Graph();
  let v = new Value('x', 'float32', [2]);
  g.inputs.push(v);
  const nodes: Node[] = [];
  for (let i = 0; i < k; i++) {
    const n = new Node('Relu', `n${i}`);
    n.inputs.push(v);
    v = new Value(`v${i}`, 'float32', [2]);
    n.outputs.push(v);
    g.insert(n);
    nodes.push(n);
  }
  g.outputs.push(v);
  return { g, nodes };
}

/** Detaches `n` from the chain (its reader reads its input instead) and removes it. */
function unlink(g: Graph, n: Node) {
  g.replaceAllUses(n.outputs[0]!, n.inputs[0]!);
  g.remove(n);
}

test('removing the current node while iterating visits every other node', () => {
  const { g } = chainGraph(6);
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    if (n.name === 'n2') unlink(g, n);
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'n3', 'n4', 'n5']);
  assert.deepEqual(g.nodeList().map((n) => n.name), ['n0', 'n1', 'n3', 'n4', 'n5']);
});

test('removing the next node while iterating neither ends the iteration nor visits it', () => {
  const { g, nodes } = chainGraph(6);
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    if (n.name === 'n1') unlink(g, nodes[2]!);
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n3', 'n4', 'n5']);
});

test('removing a whole chain (the current node and the ones after it) continues after the chain', () => {
  const { g, nodes } = chainGraph(7);
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    if (n.name === 'n2') for (const m of [nodes[4]!, nodes[3]!, nodes[2]!]) unlink(g, m);
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'n5', 'n6']);
  assert.equal(g.nodeCount, 4);
});

test('removing every node from inside the loop leaves an empty graph, each visited once', () => {
  const { g } = chainGraph(5);
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    g.remove(n, true);
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'n3', 'n4']);
  assert.deepEqual(g.nodeList(), []);
  assert.equal(g.nodeCount, 0);
});

test('nodes inserted after the position are visited; nodes inserted before are not', () => {
  const { g, nodes } = chainGraph(4);
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    if (n.name === 'n1') {
      const later = new Node('Neg', 'later');
      later.inputs.push(n.outputs[0]!);
      later.outputs.push(new Value('later_out'));
      g.insert(later, nodes[3]);
      const earlier = new Node('Neg', 'earlier');
      earlier.inputs.push(n.outputs[0]!);
      earlier.outputs.push(new Value('earlier_out'));
      g.insert(earlier, n);
      const appended = new Node('Neg', 'appended');
      appended.inputs.push(n.outputs[0]!);
      appended.outputs.push(new Value('appended_out'));
      g.insert(appended);
    }
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'later', 'n3', 'appended']);
  assert.deepEqual(g.nodeList().map((n) => n.name), ['n0', 'earlier', 'n1', 'n2', 'later', 'n3', 'appended']);
});

test('a node removed and inserted again (a move) keeps the list consistent', () => {
  const { g, nodes } = chainGraph(4);
  // move n0 to the end while iterating: the iterator goes on from where n0 was
  const seen: string[] = [];
  for (const n of g.nodes()) {
    seen.push(n.name);
    if (n.name === 'n0') {
      g.remove(n, true);
      g.insert(n);
    }
  }
  assert.deepEqual(seen, ['n0', 'n1', 'n2', 'n3', 'n0']);
  assert.deepEqual(g.nodeList().map((n) => n.name), ['n1', 'n2', 'n3', 'n0']);
  assert.equal(nodes[3]!.next, nodes[0]);
  assert.equal(nodes[0]!.prev, nodes[3]);
  assert.equal(nodes[0]!.next, undefined);
  assert.equal(nodes[1]!.prev, undefined);
});

test('a removed node has no neighbours and belongs to no graph', () => {
  const { g, nodes } = chainGraph(3);
  unlink(g, nodes[1]!);
  assert.equal(nodes[1]!.graph, undefined);
  assert.equal(nodes[1]!.next, undefined);
  assert.equal(nodes[0]!.next, nodes[2]);
  assert.equal(nodes[2]!.prev, nodes[0]);
  assert.throws(() => g.remove(nodes[1]!), /not in graph/);
});

/**
 * x ─► Relu ─► a ─┐
 *                 If(cond) ─► y      then: Neg(a) (nested: an inner If whose branch reads a too)
 *                                    else: Identity(x)
 */
function ifGraph() {
  const g = new Graph();
  const x = new Value('x', 'float32', [2]);
  const cond = new Value('cond', 'bool', []);
  g.inputs.push(x, cond);
  const relu = new Node('Relu', 'relu');
  relu.inputs.push(x);
  const a = new Value('a', 'float32', [2]);
  relu.outputs.push(a);
  g.insert(relu);

  const innerThen = new Graph('inner_then');
  const abs = new Node('Abs', 'abs');
  abs.inputs.push(a);
  abs.outputs.push(new Value('abs_out', 'float32', [2]));
  innerThen.insert(abs);
  innerThen.outputs.push(abs.outputs[0]!);
  const innerElse = new Graph('inner_else');
  innerElse.outputs.push(a); // a branch may return an outer value as it is

  const thenG = new Graph('then');
  const neg = new Node('Neg', 'neg');
  neg.inputs.push(a);
  neg.outputs.push(new Value('neg_out', 'float32', [2]));
  thenG.insert(neg);
  const innerIf = new Node('If', 'inner_if');
  innerIf.inputs.push(cond);
  innerIf.outputs.push(new Value('inner_out', 'float32', [2]));
  innerIf.attributes.set('then_branch', { type: 'graph', value: innerThen });
  innerIf.attributes.set('else_branch', { type: 'graph', value: innerElse });
  thenG.insert(innerIf);
  const add = new Node('Add', 'add');
  add.inputs.push(neg.outputs[0]!, innerIf.outputs[0]!);
  add.outputs.push(new Value('then_out', 'float32', [2]));
  thenG.insert(add);
  thenG.outputs.push(add.outputs[0]!);

  const elseG = new Graph('else');
  const id = new Node('Identity', 'id');
  id.inputs.push(x);
  id.outputs.push(new Value('else_out', 'float32', [2]));
  elseG.insert(id);
  elseG.outputs.push(id.outputs[0]!);

  const ifNode = new Node('If', 'if');
  ifNode.inputs.push(cond);
  ifNode.attributes.set('then_branch', { type: 'graph', value: thenG });
  ifNode.attributes.set('else_branch', { type: 'graph', value: elseG });
  const y = new Value('y', 'float32', [2]);
  ifNode.outputs.push(y);
  g.insert(ifNode);
  g.outputs.push(y);
  return { g, x, a, cond, relu, ifNode, neg, abs, id, innerElse };
}

const usersOf = (v: Value) => [...v.uses].map((u) => u.node.name).sort();

test('a subgraph reading outer values registers those uses, and a removed If takes them away', () => {
  const { g, x, a, cond, ifNode } = ifGraph();
  assert.deepEqual(usersOf(a), ['abs', 'neg']);
  assert.deepEqual(usersOf(cond), ['if', 'inner_if']);
  g.outputs.length = 0;
  g.remove(ifNode);
  assert.deepEqual(usersOf(a), []);
  assert.deepEqual(usersOf(x), ['relu']);
  assert.deepEqual(usersOf(cond), []);
});

test('dead-code elimination removes what only a removed If read', () => {
  const { g, relu } = ifGraph();
  const out = new Node('Neg', 'other');
  out.inputs.push(g.inputs[0]!);
  out.outputs.push(new Value('z', 'float32', [2]));
  g.insert(out);
  const ifNode = g.nodeList().find((n) => n.opType === 'If')!;
  g.outputs[0] = out.outputs[0]!;
  g.remove(ifNode);
  deadCodeElimination.run(new Model(g));
  assert.equal(relu.graph, undefined, 'the Relu only the removed If read must be gone');
  assert.deepEqual(g.nodeList().map((n) => n.name), ['other']);
});

test('re-inserting a removed If (as topological sort does) restores its captured uses once', () => {
  const { g, a, ifNode } = ifGraph();
  g.remove(ifNode, true);
  g.insert(ifNode);
  assert.deepEqual(usersOf(a), ['abs', 'neg']);
  topologicalSort.run(new Model(g));
  assert.deepEqual(usersOf(a), ['abs', 'neg']);
  assert.equal(a.uses.size, 2);
});

test('replaceAllUses rewires reads and outputs inside subgraphs at any depth', () => {
  const { g, a, neg, abs, innerElse } = ifGraph();
  const b = new Value('b', 'float32', [2]);
  g.inputs.push(b);
  g.replaceAllUses(a, b);
  assert.equal(a.uses.size, 0);
  assert.equal(neg.inputs[0], b);
  assert.equal(abs.inputs[0], b);
  assert.equal(innerElse.outputs[0], b);
  assert.deepEqual(usersOf(b), ['abs', 'neg']);
});
