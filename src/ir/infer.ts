import { dtypeFromOnnx, type DType } from '../core/dtype.js';
import type { Graph, Node } from './graph.js';

/** Ops whose output 0 has the dtype of input `i` (the ONNX type constraint `T` they share). */
const LIKE_INPUT: Record<string, number> = {};
for (const op of [
  'Abs', 'Add', 'AveragePool', 'BatchNormalization', 'Ceil', 'Clip', 'Concat', 'Conv', 'ConvTranspose', 'CumSum',
  'DepthToSpace', 'Div', 'Dropout', 'Einsum', 'Elu', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather',
  'GatherElements', 'GatherND', 'Gelu', 'Gemm', 'GlobalAveragePool', 'GroupNormalization', 'HardSigmoid',
  'Identity', 'InstanceNormalization', 'LayerNormalization', 'LeakyRelu', 'Log', 'LogSoftmax', 'MatMul', 'Max',
  'MaxPool', 'Mean', 'Min', 'Mish', 'Mod', 'Mul', 'Neg', 'Pad', 'Pow', 'Range', 'Reciprocal', 'ReduceL2',
  'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'ReduceSumSquare', 'Relu', 'Reshape',
  'Resize', 'Round', 'ScatterElements', 'ScatterND', 'Selu', 'Sigmoid', 'Sign', 'Sin', 'Cos', 'Slice', 'Softmax',
  'Softplus', 'SpaceToDepth', 'Split', 'Sqrt', 'Squeeze', 'Sub', 'Sum', 'Tanh', 'Tile', 'Transpose', 'Trilu',
  'Unsqueeze', 'Upsample',
  // com.microsoft ops that keep their activation's type
  'com.microsoft.MatMulNBits', 'com.microsoft.MultiHeadAttention', 'com.microsoft.SkipLayerNormalization',
  'com.microsoft.BiasGelu', 'com.microsoft.FastGelu', 'com.microsoft.GroupNorm', 'com.microsoft.BiasSplitGelu',
]) LIKE_INPUT[op] = 0;
LIKE_INPUT.Where = 1;
LIKE_INPUT.CastLike = 1;
LIKE_INPUT.DequantizeLinear = 1; // the scale's type
LIKE_INPUT['com.microsoft.DynamicQuantizeMatMul'] = 2; // B_scale: float32

const BOOL = new Set(['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64 = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero']);
const INT32 = new Set(['MatMulInteger', 'ConvInteger']);

/**
 * The dtype of output `i` of `node` from its inputs' dtypes and attributes, for the ops
 * builders, passes and exporters emit; undefined for ops it does not know (never a guess).
 */
export function outputDtype(node: Node, i: number): DType | undefined {
  const op = node.qualifiedType();
  const input = (k: number) => node.inputs[k]?.dtype;
  switch (op) {
    case 'Cast': return dtypeFromOnnx(node.attrInt('to', 0));
    case 'Constant': {
      const a = node.attr('value');
      if (a?.type === 'tensor') return a.value.dtype;
      if (node.attr('value_float') || node.attr('value_floats')) return 'float32';
      if (node.attr('value_int') || node.attr('value_ints')) return 'int64';
      return undefined;
    }
    case 'ConstantOfShape': {
      const a = node.attr('value');
      return a?.type === 'tensor' ? a.value.dtype : 'float32';
    }
    case 'DynamicQuantizeLinear': return (['uint8', 'float32', 'uint8'] as const)[i];
    case 'QuantizeLinear': return input(2) ?? 'uint8';
    case 'If': {
      const then = node.attr('then_branch');
      return then?.type === 'graph' ? then.value.outputs[i]?.dtype : undefined;
    }
  }
  if (i === 0 || op === 'Split') {
    if (BOOL.has(op)) return 'bool';
    if (INT64.has(op)) return 'int64';
    if (INT32.has(op)) return 'int32';
    const k = LIKE_INPUT[op];
    if (k !== undefined) return input(k);
  }
  // Dropout's mask; LayerNormalization's mean and inverse std-dev (stash_type float32 by default)
  if (op === 'Dropout' && i === 1) return 'bool';
  if (op === 'LayerNormalization') return dtypeFromOnnx(node.attrInt('stash_type', 1));
  return undefined;
}

/**
 * Fills in the dtype of every value of `g` (and its subgraphs) that has none and whose producer
 * `outputDtype` knows, in dependency order. Returns how many node outputs are still unknown.
 */
export function inferDtypes(g: Graph): number {
  let unknown = 0;
  // nodes are in topological order in a valid graph; a second sweep catches any that are not
  for (let sweep = 0; sweep < 2; sweep++) {
    unknown = 0;
    for (const n of g.nodes()) {
      for (const sg of n.subgraphs()) unknown += inferDtypes(sg);
      n.outputs.forEach((o, i) => {
        o.dtype ??= outputDtype(n, i);
        if (!o.dtype) unknown++;
      });
    }
    if (!unknown) break;
  }
  return unknown;
}
