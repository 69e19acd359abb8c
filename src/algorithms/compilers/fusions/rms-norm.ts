/**
 * RMSNorm → `SimplifiedLayerNormalization` (ONNX Runtime's RMSNorm kernel). ORT's own fusion
 * only knows `Pow(x, 2)`; ours also takes `Mul(x, x)` and the rsqrt form PyTorch exports:
 *
 *     x ─► Mul(x, x) | Pow(x, 2) ─► ReduceMean(-1) ─► Add(eps) ─► Sqrt ─► Div(x, ·) ─► Mul(w) ─► y
 *                                                              └─► Sqrt ─► Reciprocal | Div(1, ·) ─► Mul(x, ·) ─► Mul(w) ─► y
 *   ⇒  x ─► SimplifiedLayerNormalization(w, axis=-1, epsilon=eps) ─► y
 */
import type { Node, Value } from '../../../ir/graph.js';
import { noMatch, type Rule } from '../../../ir/rewrite.js';
import { constNumbers, constScalar, soleReader, substitute } from '../../../ir/match.js';

/** The other input of a binary node, given one. */
function other(n: Node, v: Value): Value | null | undefined {
  return n.inputs[0] === v ? n.inputs[1] : n.inputs[1] === v ? n.inputs[0] : undefined;
}

interface Match {
  x: Value;
  eps: number;
  weight: Value;
  last: Node;
}

export const rmsNormFusion: Rule<Match> = {
  name: 'rms-norm-to-simplified-layer-normalization',
  anchor: 'ReduceMean',
  match(rm) {
    const axes = rm.attrInts('axes') ?? constNumbers(rm.inputs[1]);
    if (!axes || axes.length !== 1 || (axes[0] !== -1 && axes[0] !== (rm.inputs[0]?.shape?.length ?? 0) - 1) || rm.attrInt('keepdims', 1) !== 1) return noMatch('not a mean over the last axis');
    const sq = rm.inputs[0]?.producer;
    let x: Value | null | undefined;
    if (sq?.opType === 'Mul' && !sq.domain && sq.inputs[0] === sq.inputs[1]) x = sq.inputs[0];
    else if (sq?.opType === 'Pow' && !sq.domain && constScalar(sq.inputs[1]) === 2) x = sq.inputs[0];
    if (!x) return noMatch('input is not x² (Mul(x, x) or Pow(x, 2))');
    const add = soleReader(rm.outputs[0]!, 'Add');
    const eps = add && constScalar(other(add, rm.outputs[0]!));
    if (!add || eps === undefined) return noMatch('the mean is not followed by + eps');
    const sqrt = soleReader(add.outputs[0]!, 'Sqrt');
    if (!sqrt) return noMatch('no Sqrt after + eps');
    let normed: Node | undefined = soleReader(sqrt.outputs[0]!, 'Div');
    if (normed && normed.inputs[1] === sqrt.outputs[0] && constScalar(normed.inputs[0]) === 1) {
      // 1 / rms, then x · (1 / rms): PyTorch's rsqrt as its exporter writes it
      const inv = normed;
      normed = soleReader(inv.outputs[0]!, 'Mul');
      if (!normed || other(normed, inv.outputs[0]!) !== x) return noMatch('1 / rms does not multiply x');
    } else if (normed && (normed.inputs[0] !== x || normed.inputs[1] !== sqrt.outputs[0])) return noMatch('the Div is not x / rms');
    if (!normed) {
      const rec = soleReader(sqrt.outputs[0]!, 'Reciprocal');
      normed = rec && soleReader(rec.outputs[0]!, 'Mul');
      if (!normed || other(normed, rec!.outputs[0]!) !== x) return noMatch('the rms does not divide x');
    }
    const scale = soleReader(normed.outputs[0]!, 'Mul');
    const weight = scale && other(scale, normed.outputs[0]!);
    // a norm without a weight is left alone: its scale of ones would need the hidden size
    if (!scale || !weight?.const || weight.const.shape.length !== 1) return noMatch('no per-channel weight after the norm');
    return { x, eps, weight, last: scale };
  },
  rewrite(m, rm) {
    substitute(rm, m.last, 'SimplifiedLayerNormalization', '', [m.x, m.weight], {
      axis: { type: 'int', value: -1 },
      epsilon: { type: 'float', value: m.eps },
    });
  },
};
