/**
 * GELU's tanh approximation → ONNX Runtime's `FastGelu` (ORT's optimizer fuses the erf form to
 * Gelu itself, but not this one, which Flux and SD3 feed-forwards use):
 *
 *     0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))   ⇒   FastGelu(x)
 *
 * x³ as Mul(Mul(x, x), x) or Pow(x, 3); the halving on x or on the product.
 */
import type { Node, Value } from '../../../ir/graph.js';
import { noMatch, type Rule } from '../../../ir/rewrite.js';
import { constScalar, producedBy, soleReader, substitute } from '../../../ir/match.js';

const near = (a: number | undefined, b: number) => a !== undefined && Math.abs(a - b) <= 1e-4 * Math.abs(b);

/** For a binary node, [the non-constant input, the constant] when the other input is a scalar constant. */
function withConst(n: Node | undefined): [Value, number] | undefined {
  if (!n) return undefined;
  for (const i of [0, 1]) {
    const c = constScalar(n.inputs[1 - i]);
    if (c !== undefined && n.inputs[i]) return [n.inputs[i]!, c];
  }
  return undefined;
}

function isCube(v: Value | null | undefined, x: Value): boolean {
  const p = v?.producer;
  if (p?.opType === 'Pow' && !p.domain) return p.inputs[0] === x && constScalar(p.inputs[1]) === 3;
  if (p?.opType !== 'Mul' || p.domain) return false;
  const sq = (s: Value | null) => s?.producer?.opType === 'Mul' && s.producer.inputs[0] === x && s.producer.inputs[1] === x;
  return (p.inputs[0] === x && sq(p.inputs[1])) || (p.inputs[1] === x && sq(p.inputs[0]));
}

interface Match {
  x: Value;
  last: Node;
}

export const fastGeluFusion: Rule<Match> = {
  name: 'tanh-gelu-to-fast-gelu',
  anchor: 'Tanh',
  match(tanh) {
    const inner = withConst(producedBy(tanh.inputs[0], 'Mul'));
    if (!inner || !near(inner[1], Math.sqrt(2 / Math.PI))) return noMatch('tanh input is not √(2/π)·(…)');
    const sum = producedBy(inner[0], 'Add');
    if (!sum) return noMatch('no x + 0.044715·x³');
    let x: Value | undefined;
    for (const i of [0, 1]) {
      const c = withConst(producedBy(sum.inputs[1 - i], 'Mul'));
      if (c && near(c[1], 0.044715) && sum.inputs[i] && isCube(c[0], sum.inputs[i]!)) x = sum.inputs[i]!;
    }
    if (!x) return noMatch('no x + 0.044715·x³');
    const t = tanh.outputs[0]!;
    const plus = soleReader(t, 'Add');
    if (!plus || !near(withConst(plus)?.[1], 1)) return noMatch('tanh is not followed by + 1');
    const p = plus.outputs[0]!;
    const mul = soleReader(p, 'Mul');
    if (!mul) return noMatch('1 + tanh is not multiplied');
    const o = mul.inputs[0] === p ? mul.inputs[1] : mul.inputs[0];
    // (1 + tanh)·(0.5·x)
    const half = withConst(producedBy(o, 'Mul'));
    if (half && half[0] === x && near(half[1], 0.5)) return { x, last: mul };
    // ((1 + tanh)·x)·0.5
    if (o === x) {
      const out = mul.outputs[0]!;
      const h = soleReader(out, 'Mul');
      if (h && near(withConst(h)?.[1], 0.5)) return { x, last: h };
    }
    return noMatch('the product is not halved');
  },
  rewrite(m, tanh) {
    substitute(tanh, m.last, 'FastGelu', 'com.microsoft', [m.x]);
  },
};
