import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { NoMatch, noMatch, rulesPass, RulesLimitError, tryRule, type Rule } from '../../src/ir/rewrite.js';
import { PassError, runPasses } from '../../src/ir/passes/pass.js';
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
  const p = rulesPass('drop', [dropNextNeg], { maxRounds: 1, onLimit: 'stop' });
  p.run(m);
  assert.equal(p.fired.get('drop-next-neg'), 5);
  assert.deepEqual(m.graph.nodeList().map((n) => n.opType), ['Relu', 'Relu', 'Relu', 'Relu', 'Relu']);
});

test('rulesPass rewrites inside If branches too (at any depth)', async () => {
  // y = If(cond) then Relu(Identity(Identity(x))) else Neg(x), the then-branch nested one If deeper
  const inner = new GraphBuilder('inner_then');
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 3, 4]);
  const cond = b.input('cond', 'bool', []);
  inner.output(inner.op('Relu', [inner.op('Identity', [inner.op('Identity', [x])])]), 'inner_y');
  const innerElse = new GraphBuilder('inner_else');
  innerElse.output(innerElse.op('Neg', [x]), 'inner_else_y');
  const thenB = new GraphBuilder('then');
  thenB.output(thenB.op('If', [cond], { then_branch: inner.graph, else_branch: innerElse.graph }), 'then_y');
  const elseB = new GraphBuilder('else');
  elseB.output(elseB.op('Neg', [x]), 'else_y');
  b.output(b.op('If', [cond], { then_branch: thenB.graph, else_branch: elseB.graph }), 'y');
  const m = b.model();
  const p = rulesPass('cleanup', [identityElimination]);
  const r = p.run(m);
  assert.ok(r.changed);
  assert.equal(p.fired.get('identity-elimination'), 2);
  assert.deepEqual(inner.graph.nodeList().map((n) => n.opType), ['Relu']);
  assert.equal(inner.graph.nodeList()[0]!.inputs[0], x);
  const s = await Session.create(m);
  const { outputs } = await s.run({ x: f32([2, 3, 4], xs), cond: { dtype: 'bool', dims: [], data: Uint8Array.of(1) } });
  assert.deepEqual([...(outputs.y!.data as Float32Array)], xs);
});

/** A rule that always fires: it flips an attribute back and forth, so the pass never converges. */
const flipForever: Rule<Node> = {
  name: 'flip-forever',
  anchor: 'Relu',
  match: (node) => node,
  rewrite: (_m, node) => { node.attributes.set('flip', { type: 'int', value: 1 - node.attrInt('flip', 0) }); },
};

test('rulesPass reports running out of rounds: an error by default, a result field on request', () => {
  const build = () => {
    const b = new GraphBuilder();
    b.output(b.op('Relu', [b.input('x', 'float32', [2])]), 'y');
    return b.model();
  };
  assert.throws(() => rulesPass('loop', [flipForever], { maxRounds: 3 }).run(build()), (e: unknown) => {
    assert.ok(e instanceof RulesLimitError);
    assert.equal(e.code, 'RULES_ROUND_LIMIT');
    assert.match(e.message, /'loop'.*3 rounds.*flip-forever/);
    return true;
  });
  assert.throws(() => runPasses(build(), [rulesPass('loop', [flipForever], { maxRounds: 2 })]), (e: unknown) => e instanceof PassError && /loop/.test(e.message));
  const r = rulesPass('loop', [flipForever], { maxRounds: 4, onLimit: 'stop' }).run(build());
  assert.equal(r.limitReached, true);
  assert.equal(r.rounds, 4);
  // a pass that converges says so
  const ok = rulesPass('cleanup', [identityElimination]).run(build());
  assert.equal(ok.limitReached, false);
  assert.equal(ok.rounds, 1);
});
