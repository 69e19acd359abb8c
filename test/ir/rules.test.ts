import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { NoMatch, noMatch, rulesPass, tryRule, type Rule } from '../../src/ir/rewrite.js';
import type { Node } from '../../src/ir/graph.js';
import { identityElimination } from '../../src/ir/rules/identity-elimination.js';
import { transposeFold } from '../../src/ir/rules/transpose-fold.js';
import { Session, f32 } from '../../src/runtime/session.js';

const xs = Array.from({ length: 24 }, (_, i) => i);

async function run(m: ReturnType<GraphBuilder['model']>) {
  return [...((await (await Session.create(m)).run({ x: f32([2, 3, 4], xs) })).outputs.y!.data as Float32Array)];
}

test('identity-elimination fires on an inner Identity', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3, 4]);
  const id = b.op('Identity', [x]);
  b.output(b.op('Relu', [id]), 'y');
  const m = b.model();
  const before = await run(m);
  const p = rulesPass('cleanup', [identityElimination]);
  assert.ok(p.run(m).changed);
  assert.equal(p.fired.get('identity-elimination'), 1);
  assert.deepEqual(m.graph.nodeList().map((n) => n.opType), ['Relu']);
  assert.deepEqual(await run(m), before);
});

test('identity-elimination does not fire on an Identity that is a graph output', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3, 4]);
  b.output(b.op('Identity', [b.op('Relu', [x])]), 'y');
  const m = b.model();
  const idNode = m.graph.nodeList()[1]!;
  const r = tryRule(identityElimination, idNode);
  assert.ok(r instanceof NoMatch);
  assert.match(r.reason, /graph output/);
  assert.equal(rulesPass('cleanup', [identityElimination]).run(m).changed, false);
});

test('transpose-fold merges two Transposes, and removes a pair that cancels', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3, 4]);
  const t = b.transpose(b.transpose(x, [0, 2, 1]), [2, 0, 1]);
  b.output(b.op('Relu', [t]), 'y');
  const m = b.model();
  const before = await run(m);
  assert.ok(rulesPass('fold', [transposeFold]).run(m).changed);
  assert.deepEqual(m.graph.nodeList().map((n) => n.opType), ['Transpose', 'Relu']);
  assert.deepEqual(await run(m), before);

  const c = new GraphBuilder();
  const x2 = c.input('x', 'float32', [2, 3, 4]);
  c.output(c.op('Relu', [c.transpose(c.transpose(x2, [0, 2, 1]), [0, 2, 1])]), 'y');
  const m2 = c.model();
  rulesPass('fold', [transposeFold]).run(m2);
  assert.deepEqual(m2.graph.nodeList().map((n) => n.opType), ['Relu']);
  assert.deepEqual(await run(m2), xs);
});

test('transpose-fold does not fire when the first Transpose has other readers', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3, 4]);
  const t1 = b.transpose(x, [0, 2, 1]);
  const t2 = b.transpose(t1, [0, 2, 1]);
  b.output(b.add(t2, b.op('Relu', [b.transpose(t1, [0, 2, 1])])), 'y');
  const m = b.model();
  const r = tryRule(transposeFold, t2.producer!);
  assert.ok(r instanceof NoMatch);
  assert.match(r.reason, /other readers/);
  assert.ok(tryRule(transposeFold, t1.producer!) instanceof NoMatch);
  assert.equal(rulesPass('fold', [transposeFold]).run(m).changed, false);
});

/** A rule anchored at Relu that removes the Neg right after it (its sibling in node order). */
const dropNextNeg: Rule<{ neg: Node }> = {
  name: 'drop-next-neg',
  anchor: 'Relu',
  match(node) {
    const neg = node.next;
    if (!neg || neg.opType !== 'Neg' || neg.inputs[0] !== node.outputs[0]) return noMatch('no Neg after this Relu');
    return { neg };
  },
  rewrite({ neg }, node) {
    node.graph!.replaceAllUses(neg.outputs[0]!, node.outputs[0]!);
    node.graph!.remove(neg);
  },
};

test('a rule that removes the node after its anchor fires at every anchor in one round', () => {
  const b = new GraphBuilder();
  let v = b.input('x', 'float32', [2, 3, 4]);
  for (let i = 0; i < 5; i++) v = b.op('Neg', [b.op('Relu', [v])]);
  b.output(v, 'y');
  const m = b.model();
  const p = rulesPass('drop', [dropNextNeg], 1);
  p.run(m);
  assert.equal(p.fired.get('drop-next-neg'), 5);
  assert.deepEqual(m.graph.nodeList().map((n) => n.opType), ['Relu', 'Relu', 'Relu', 'Relu', 'Relu']);
});
