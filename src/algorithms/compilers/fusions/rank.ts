/**
 * The rank of a value, worked out from its producers where the type inference left no shape
 * (it does not follow multi-output ops such as Split, nor contrib ops such as
 * DynamicQuantizeMatMul, so after quantization most activations carry no shape). A fusion that
 * changes how operands broadcast must know the ranks it relies on; undefined means unknown, and
 * the fusion then does not fire.
 */
import type { Value } from '../../../ir/graph.js';
import { constInts } from '../../../ir/type-inference.js';

/** ops whose output 0 has the rank of input 0 */
const SAME_RANK = new Set([
  'Abs', 'Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Sin', 'Cos', 'Tanh', 'Sigmoid', 'Erf', 'Relu', 'Softplus', 'Identity', 'Cast',
  'Clip', 'Softmax', 'LayerNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
  'Split', 'Slice', 'Concat', 'Gelu', 'FastGelu', 'QuickGelu', 'BiasGelu', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'MatMulNBits',
  'MultiHeadAttention', 'RotaryEmbedding', 'Dropout', 'Transpose',
]);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Where']);

/** The rank of `v`, or undefined when it cannot be worked out. */
export function rankOf(v: Value | null | undefined, memo = new Map<Value, number | undefined>()): number | undefined {
  if (!v) return undefined;
  if (v.shape) return v.shape.length;
  if (v.const) return v.const.shape.length;
  if (memo.has(v)) return memo.get(v);
  memo.set(v, undefined); // a cycle (there is none in a valid graph) stays unknown
  const r = derive(v, memo);
  memo.set(v, r);
  return r;
}

function derive(v: Value, memo: Map<Value, number | undefined>): number | undefined {
  const p = v.producer;
  if (!p) return undefined;
  const op = p.opType;
  const rank = (i: number) => rankOf(p.inputs[i], memo);
  if (op === 'Constant') {
    const a = p.attr('value');
    return a?.type === 'tensor' ? a.value.shape.length : undefined;
  }
  if (SAME_RANK.has(op)) return rank(0);
  if (BROADCAST.has(op)) {
    const rs = p.inputs.map((x) => rankOf(x, memo));
    return rs.every((r) => r !== undefined) ? Math.max(...(rs as number[])) : undefined;
  }
  switch (op) {
    case 'MatMul': {
      const a = rank(0);
      const b = rank(1);
      return a !== undefined && b !== undefined && a >= 2 && b >= 2 ? Math.max(a, b) : undefined;
    }
    case 'Gemm': return 2;
    case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': {
      const r = rank(0);
      if (r === undefined || p.attrInt('keepdims', 1) === 1) return r;
      const axes = p.attrInts('axes') ?? constInts(p.inputs[1]);
      return axes ? r - axes.length : undefined;
    }
    case 'Unsqueeze': {
      const axes = constInts(p.inputs[1]) ?? p.attrInts('axes');
      const r = rank(0);
      return axes && r !== undefined ? r + axes.length : undefined;
    }
    case 'Squeeze': {
      const axes = constInts(p.inputs[1]) ?? p.attrInts('axes');
      const r = rank(0);
      return axes && r !== undefined ? r - axes.length : undefined;
    }
    case 'Reshape': return constInts(p.inputs[1])?.length;
    case 'If': {
      // a cacher's skippable blocks: both branches return the same tensors
      const then = p.attr('then_branch');
      return then?.type === 'graph' ? rankOf(then.value.outputs[v.outputIndex], memo) : undefined;
    }
    default: return undefined;
  }
}
