/**
 * adaLN modulation (diffusers' AdaLayerNormZero/Single/Continuous, Flux and SD3): a LayerNorm
 * without affine parameters followed by a per-sample scale and shift → one LayerNormalization
 * whose scale and bias are those [B, 1, D] vectors (ONNX Runtime's CPU kernel broadcasts them):
 *
 *     x [B, S, D] ─► LayerNormalization(ones, zeros) ─► Mul(s) ─► Add(t) ─► y     (s = 1 + scale_msa, t = shift_msa: [B, 1, D])
 *   ⇒
 *     x ─► LayerNormalization(s, t) ─► y
 *
 * saving two passes over [B, S, D] per norm. Fires only where s and t provably broadcast into x
 * without growing it: x of rank 3, s and t of rank 3 with a singleton sequence axis (a chunk of
 * `emb[:, None]`, as diffusers writes it, or a known shape).
 */
import type { Node, Value } from '../../../ir/graph.js';
import { noMatch, type Rule } from '../../../ir/rewrite.js';
import { constInts, inferredRank } from '../../../ir/type-inference.js';
import { constNumbers, soleReader, substitute } from '../../../ir/match.js';

const other = (n: Node, v: Value) => (n.inputs[0] === v ? n.inputs[1] : n.inputs[0]);

/** Whether `v` [B, 1, D] has a singleton axis 1: a known shape, or a chunk of an Unsqueeze on axis 1 (through scalar arithmetic and last-axis Split/Slice). */
function singletonSequence(v: Value | null | undefined, depth = 0): boolean {
  if (!v || depth > 8) return false;
  if (v.shape) return v.shape.length === 3 && v.shape[1] === 1;
  const p = v.producer;
  if (!p || p.domain) return false;
  switch (p.opType) {
    case 'Unsqueeze': {
      const axes = constInts(p.inputs[1]) ?? p.attrInts('axes');
      return inferredRank(v) === 3 && !!axes && axes.some((a) => a === 1 || a === -2);
    }
    case 'Split': case 'Slice': {
      // along the last axis only (Slice: its axes input)
      const axes = p.opType === 'Split' ? [p.attrInt('axis', 0)] : constInts(p.inputs[3]);
      return !!axes && axes.every((a) => a === -1 || a === 2) && singletonSequence(p.inputs[0], depth + 1);
    }
    case 'Add': case 'Mul': case 'Sub': {
      // scalar arithmetic (1 + scale) keeps the shape
      for (const i of [0, 1]) if (constNumbers(p.inputs[1 - i])?.length === 1) return singletonSequence(p.inputs[i], depth + 1);
      return false;
    }
    default:
      return false;
  }
}

const all = (v: Value | null | undefined, x: number) => {
  const c = constNumbers(v);
  return !!c && c.length > 0 && c.every((y) => y === x);
};

interface Match {
  x: Value;
  scale: Value;
  shift: Value;
  epsilon: number;
  last: Node;
}

export const modulatedLayerNormFusion: Rule<Match> = {
  name: 'modulated-layer-norm',
  anchor: 'LayerNormalization',
  match(ln) {
    if (ln.outputs.length > 1 && ln.outputs.slice(1).some((o) => o.uses.size)) return noMatch('the mean or inverse deviation is read');
    const x = ln.inputs[0]!;
    if (inferredRank(x) !== 3) return noMatch('x is not [B, S, D]');
    if (ln.attrInt('axis', -1) !== -1 && ln.attrInt('axis', -1) !== 2) return noMatch('not a norm over the last axis');
    if (!all(ln.inputs[1], 1) || (ln.inputs[2] && !all(ln.inputs[2], 0))) return noMatch('the norm has affine parameters');
    const y = ln.outputs[0]!;
    const mul = soleReader(y, 'Mul');
    if (!mul) return noMatch('the norm is not scaled');
    const scale = other(mul, y);
    const add = soleReader(mul.outputs[0]!, 'Add');
    if (!add || !scale) return noMatch('the scaled norm is not shifted');
    const shift = other(add, mul.outputs[0]!);
    if (!shift) return noMatch('the scaled norm is not shifted');
    if (constNumbers(scale) || constNumbers(shift)) return noMatch('a constant scale or shift (an affine LayerNorm) is left to ONNX Runtime');
    if (inferredRank(scale) !== 3 || inferredRank(shift) !== 3 || !singletonSequence(scale) || !singletonSequence(shift)) return noMatch('scale and shift are not per-sample [B, 1, D] vectors');
    return { x, scale, shift, epsilon: (ln.attr('epsilon')?.value as number | undefined) ?? 1e-5, last: add };
  },
  rewrite(m, ln) {
    substitute(ln, m.last, 'LayerNormalization', '', [m.x, m.scale, m.shift], {
      axis: { type: 'int', value: -1 },
      epsilon: { type: 'float', value: m.epsilon },
    });
  },
};
