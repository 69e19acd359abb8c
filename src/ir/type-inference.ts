/**
 * Output dtypes (and shapes, where they follow from what is known) of the ONNX ops builders and
 * passes emit, so every value a graph rewrite creates can be declared: a new graph input, an
 * `If` output, a quantized value. Shapes are filled only when certain: a dim that cannot be
 * worked out is `null` (unknown), and a shape that cannot be worked out stays undefined.
 */
import { dtypeFromOnnx, type DType } from '../core/dtype.js';
import { tensorData } from '../core/tensor.js';
import type { Dim, Graph, Node, Value } from './graph.js';
import { shapeValues } from './shape-values.js';

const SAME_AS_FIRST = new Set([
  'Abs', 'Neg', 'Exp', 'Log', 'Sqrt', 'Reciprocal', 'Sin', 'Cos', 'Tanh', 'Sigmoid', 'Erf', 'Relu', 'Softplus', 'Gelu', 'FastGelu',
  'HardSigmoid', 'LeakyRelu', 'Elu', 'Floor', 'Ceil', 'Round', 'Sign', 'Identity', 'Clip', 'Softmax', 'LogSoftmax',
  'LayerNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
  'InstanceNormalization', 'BatchNormalization', 'GroupNorm', 'Dropout', 'Trilu',
  // com.microsoft ops whose output 0 is input 0's shape (RotaryEmbedding: [B, S, H·D] or [B, N, S, H])
  'QuickGelu', 'RotaryEmbedding',
]);
/** Ops with more outputs whose output 0 is what `shapeOf` computes (the others: mean, inverse std-dev, mask, present key/value). */
const FIRST_OUTPUT = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'Dropout', 'MultiHeadAttention']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Mod', 'BiasGelu']);
const COMPARE = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor']);

/** A value's rank from its inferred shape (or constant); undefined when unknown: run `inferDtypes` on its graph first. */
export function inferredRank(v: Value | null | undefined): number | undefined {
  return (v?.shape ?? v?.const?.shape)?.length;
}

/** The integer contents of a value that a `Constant` node or an initializer holds, if small. */
export function constInts(v: Value | null | undefined): number[] | undefined {
  if (!v) return undefined;
  let t = v.const;
  if (!t && v.producer?.opType === 'Constant') {
    const a = v.producer.attr('value');
    if (a?.type === 'tensor') t = a.value;
    const ints = v.producer.attr('value_ints');
    if (ints?.type === 'ints') return ints.value;
    const int = v.producer.attr('value_int');
    if (int?.type === 'int') return [int.value];
  }
  if (!t || (t.dtype !== 'int64' && t.dtype !== 'int32') || t.shape.reduce((a, b) => a * b, 1) > 64) return undefined;
  return Array.from(tensorData(t) as BigInt64Array | Int32Array, Number);
}

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
  'com.microsoft.Gelu', 'com.microsoft.QuickGelu', 'com.microsoft.FusedMatMul', 'com.microsoft.RotaryEmbedding', 'com.microsoft.Attention',
  'com.microsoft.SkipSimplifiedLayerNormalization', 'SimplifiedLayerNormalization', 'TopK', 'Gelu', 'GroupNormalization',
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

function broadcast(shapes: (Dim[] | undefined)[]): Dim[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    // a missing leading axis broadcasts as 1; an unknown one (null) stays unknown
    const dims = shapes.map((s) => (i < rank - s!.length ? 1 : s![s!.length - rank + i]!));
    const big = dims.filter((d) => d !== 1);
    if (!big.length) out.push(1);
    else if (big.every((d) => d === big[0] && d !== null)) out.push(big[0]!);
    else {
      // a fixed size other than 1 wins over symbolic ones (they must equal it to broadcast)
      const nums = new Set(big.filter((d): d is number => typeof d === 'number'));
      out.push(nums.size === 1 ? [...nums][0]! : null);
    }
  }
  return out;
}

const normAxis = (a: number, rank: number) => (a < 0 ? a + rank : a);

/** The length of a 1-D value (a shape, axes or sizes input), where known. */
function length(v: Value | null | undefined): number | undefined {
  const d = (v?.const?.shape ?? v?.shape)?.[0];
  return typeof d === 'number' ? d : undefined;
}

/** `n` unknown dims: what a shape input of length n says when its values are not constant. */
function unknownDims(n: number | undefined): Dim[] | undefined {
  return n === undefined ? undefined : Array<Dim>(n).fill(null);
}

/** How many elements Slice takes from a dim of size `d` (ONNX's clamping of starts and ends). */
function sliceLength(d: number, start: number, end: number, step: number): number {
  const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);
  const norm = (x: number) => (x < 0 ? x + d : x);
  const [b, e] = step > 0 ? [clamp(norm(start), 0, d), clamp(norm(end), 0, d)] : [clamp(norm(start), 0, d - 1), clamp(norm(end), -1, d - 1)];
  return Math.max(0, Math.ceil((e - b) / step));
}

/**
 * Concat: every input has the output's rank, so one known input shape gives it. The concatenated
 * axis is the sum of the parts where all are known; another axis is the same in every input, so a
 * fixed size any input gives holds for all.
 */
function concatShape(node: Node): Dim[] | undefined {
  const shapes = node.inputs.map((v) => v?.shape).filter((s): s is Dim[] => !!s);
  const r = shapes[0]?.length;
  if (r === undefined || shapes.some((s) => s.length !== r)) return undefined;
  const axis = normAxis(node.attrInt('axis', 0), r);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const dims = shapes.map((s) => s[i]!);
    if (i === axis) out.push(shapes.length === node.inputs.length && dims.every((d): d is number => typeof d === 'number') ? dims.reduce((a, b) => a + b, 0) : null);
    else out.push(dims.find((d) => typeof d === 'number') ?? dims.find((d) => d !== null) ?? null);
  }
  return out;
}

/**
 * The output shapes of Split along its axis: given sizes (the `split` input, or the attribute
 * before opset 13), else equal parts of a known dim; each part keeps the input's rank.
 */
function splitShapes(node: Node): (Dim[] | undefined)[] {
  const s0 = node.inputs[0]?.shape;
  const n = node.outputs.length;
  if (!s0) return Array(n).fill(undefined);
  const axis = normAxis(node.attrInt('axis', 0), s0.length);
  const d = s0[axis];
  const sizes = (node.inputs[1] ? constInts(node.inputs[1]) : node.attrInts('split')) ?? (typeof d === 'number' && d % n === 0 && !node.inputs[1] ? Array(n).fill(d / n) : undefined);
  const part = (i: number): Dim => (sizes?.length === n ? sizes[i]! : null);
  return node.outputs.map((_, i) => s0.map((x, j) => (j === axis ? part(i) : x)));
}

/**
 * Reshape to a constant target: its length is the output's rank even where the input's shape is
 * unknown (then a 0, copying an input dim, and the -1 stay unknown).
 */
function reshapeShape(node: Node): Dim[] | undefined {
  const s0 = node.inputs[0]?.shape;
  // a target an exporter computes from shapes (Concat(batch, -1, heads, …)): its length, and the
  // entries that are static
  const target = constInts(node.inputs[1]) ?? shapeValues(node.inputs[1])?.map((e) => (Number.isInteger(e) ? (e as number) : null));
  if (!target) return undefined;
  const allowZero = node.attrInt('allowzero', 0) === 1;
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (s0?.[i] ?? null) : d === -1 ? null : d));
  const minus = target.indexOf(-1);
  if (s0 && minus >= 0 && s0.every((d) => typeof d === 'number') && out.every((d, i) => i === minus || typeof d === 'number')) {
    const total = (s0 as number[]).reduce((a, b) => a * b, 1);
    const rest = out.reduce<number>((a, d, i) => (i === minus ? a : a * (d as number)), 1);
    out[minus] = rest ? total / rest : null;
  }
  return out;
}

function shapeOf(node: Node): Dim[] | undefined {
  const op = node.opType;
  const ins = node.inputs;
  const s0 = ins[0]?.shape;
  if (op === 'Constant') {
    const a = node.attr('value');
    if (a?.type === 'tensor') return [...a.value.shape];
    const l = [...node.attributes.values()][0];
    if (l?.type === 'float' || l?.type === 'int') return [];
    if (l?.type === 'floats' || l?.type === 'ints') return [l.value.length];
    return undefined;
  }
  if (SAME_AS_FIRST.has(op) || op === 'Cast' || op === 'CastLike') return s0 && [...s0];
  // Max and Min take any number of inputs
  if (BROADCAST.has(op) || COMPARE.has(op) || op === 'Where') return broadcast(ins.filter((v) => v).map((v) => v!.shape));
  if (op === 'Concat') return concatShape(node);
  if (op === 'Reshape') return reshapeShape(node);
  if (op === 'Gemm') {
    // A and Y are 2-D whatever is known of their dims
    const s1 = ins[1]?.shape;
    const m = s0?.length === 2 ? s0[node.attrInt('transA', 0) ? 1 : 0]! : null;
    const n = s1?.length === 2 ? s1[node.attrInt('transB', 0) ? 0 : 1]! : null;
    return [m, n];
  }
  if (!s0) return undefined;
  const r = s0.length;
  switch (op) {
    case 'Shape': {
      const start = normAxis(node.attrInt('start', 0), r);
      const end = normAxis(node.attrInt('end', r), r);
      return [Math.max(0, Math.min(end, r) - Math.max(start, 0))];
    }
    case 'Transpose': {
      const perm = node.attrInts('perm') ?? s0.map((_, i) => r - 1 - i);
      return perm.map((p) => s0[p] ?? null);
    }
    case 'MatMul': case 'MatMulIntegerToFloat': case 'DynamicQuantizeMatMul': {
      // the contrib ones: MatMul of A and B (dequantized), as ONNX Runtime's MatMul shape inference
      const s1 = ins[1]?.shape ?? ins[1]?.const?.shape;
      if (!s1 || r < 2 || s1.length < 2) return undefined;
      const batch = broadcast([s0.slice(0, -2), s1.slice(0, -2)]);
      return batch && [...batch, s0[r - 2]!, s1[s1.length - 1]!];
    }
    case 'MatMulNBits': {
      // A [..., K] times the packed [K, N] weight
      const n = node.attrInt('N', 0);
      return [...s0.slice(0, -1), n > 0 ? n : null];
    }
    case 'MultiHeadAttention': {
      // query [B, S, D] (or packed QKV [B, S, N, 3, H]) → [B, S, D_v]: value [B, L, D_v], or [B, N, L, H] (D_v = N·H)
      if (r !== 3 && r !== 5) return undefined;
      const v = ins[2]?.shape;
      const times = (a: Dim | undefined, b: Dim | undefined) => (typeof a === 'number' && typeof b === 'number' ? a * b : null);
      const dv = r === 5 ? times(s0[2], s0[4]) : v?.length === 3 ? v[2]! : v?.length === 4 ? times(v[1], v[3]) : null;
      return [s0[0]!, s0[1]!, dv];
    }
    case 'Unsqueeze': {
      const axes = constInts(ins[1]) ?? node.attrInts('axes');
      if (!axes) return undefined;
      const rank = r + axes.length;
      const set = new Set(axes.map((a) => normAxis(a, rank)));
      const out: Dim[] = [];
      for (let i = 0, j = 0; i < rank; i++) out.push(set.has(i) ? 1 : s0[j++]!);
      return out;
    }
    case 'Squeeze': {
      const axes = constInts(ins[1]) ?? node.attrInts('axes');
      if (!axes) return s0.every((d) => d !== null && d !== 1 && typeof d === 'number') ? [...s0] : undefined;
      const set = new Set(axes.map((a) => normAxis(a, r)));
      return s0.filter((_, i) => !set.has(i));
    }
    case 'Expand': {
      // the output is the input broadcast with the shape input: its rank is the larger of the
      // input's rank and the shape input's length, known even when the shape's values are not
      const target = constInts(ins[1]) ?? unknownDims(length(ins[1]));
      return target && broadcast([s0, target]);
    }
    case 'Slice': {
      // the rank is the input's; a dim is known where no axis slices it, or where the slice is constant
      const starts = constInts(ins[1]);
      const ends = constInts(ins[2]);
      const axes = ins[3] ? constInts(ins[3]) : starts?.map((_, i) => i);
      const steps = ins[4] ? constInts(ins[4]) : starts?.map(() => 1);
      if (!axes) return s0.map(() => null);
      const out = [...s0];
      axes.forEach((a, i) => {
        const ax = normAxis(a, r);
        const d = s0[ax];
        const [b, e, k] = [starts?.[i], ends?.[i], steps?.[i]];
        out[ax] = typeof d === 'number' && b !== undefined && e !== undefined && k ? sliceLength(d, b, e, k) : null;
      });
      return out;
    }
    case 'Conv': {
      const w = ins[1]?.shape;
      if (!w || w.length !== r || node.attr('auto_pad')) return undefined;
      const k = node.attrInts('kernel_shape') ?? w.slice(2);
      const pads = node.attrInts('pads') ?? Array(2 * (r - 2)).fill(0);
      const strides = node.attrInts('strides') ?? Array(r - 2).fill(1);
      const dil = node.attrInts('dilations') ?? Array(r - 2).fill(1);
      const spatial = s0.slice(2).map((d, i) => {
        const kk = k[i];
        if (typeof d !== 'number' || typeof kk !== 'number') return null;
        return Math.floor((d + pads[i]! + pads[i + r - 2]! - dil[i]! * (kk - 1) - 1) / strides[i]!) + 1;
      });
      return [s0[0]!, w[0]!, ...spatial];
    }
    case 'Gather': {
      const idx = ins[1]?.shape;
      if (!idx) return undefined;
      const axis = normAxis(node.attrInt('axis', 0), r);
      return [...s0.slice(0, axis), ...idx, ...s0.slice(axis + 1)];
    }
    case 'ReduceMean': case 'ReduceSum': case 'ReduceMax': case 'ReduceMin': {
      const keep = node.attrInt('keepdims', 1) === 1;
      const given = node.attrInts('axes') ?? (ins[1] ? constInts(ins[1]) : []);
      // axes only known at run time: kept dims may become 1, so only the rank is known
      if (!given) return keep ? s0.map((d) => (d === 1 ? 1 : null)) : undefined;
      // no axes: every axis, or none with noop_with_empty_axes (opset 18)
      if (!given.length && node.attrInt('noop_with_empty_axes', 0) === 1) return [...s0];
      const axes = given.length ? given : s0.map((_, i) => i);
      const set = new Set(axes.map((a) => normAxis(a, r)));
      return keep ? s0.map((d, i) => (set.has(i) ? 1 : d)) : s0.filter((_, i) => !set.has(i));
    }
    default:
      return undefined;
  }
}

/**
 * Fills in the dtype and, where it can, the shape of each output of `node` that has none.
 * Returns whether every output now has a dtype.
 */
export function inferNodeTypes(node: Node): boolean {
  if (node.opType === 'If') {
    const then = node.attr('then_branch');
    if (then?.type === 'graph') {
      node.outputs.forEach((o, i) => {
        const src = then.value.outputs[i];
        o.dtype ??= src?.dtype;
        if (!o.shape && src?.shape) o.shape = [...src.shape];
      });
    }
    return node.outputs.every((o) => o.dtype);
  }
  const shapes = node.opType === 'Split' && !node.domain ? splitShapes(node)
    : [node.outputs.length === 1 || FIRST_OUTPUT.has(node.opType) ? shapeOf(node) : undefined];
  node.outputs.forEach((o, i) => {
    o.dtype ??= outputDtype(node, i);
    if (!o.shape && shapes[i]) o.shape = shapes[i];
  });
  return node.outputs.every((o) => o.dtype);
}

/**
 * Fills in the dtype (and shape where certain) of every value of `g` and its subgraphs that has
 * none, in dependency order. Returns how many node outputs are still unknown.
 */
export function inferDtypes(g: Graph): number {
  let unknown = 0;
  // nodes are in topological order in a valid graph; a second sweep catches any that are not
  for (let sweep = 0; sweep < 2; sweep++) {
    unknown = 0;
    for (const n of g.nodes()) {
      for (const sg of n.subgraphs()) unknown += inferDtypes(sg);
      inferNodeTypes(n);
      unknown += n.outputs.filter((o) => !o.dtype).length;
    }
    if (!unknown) break;
  }
  return unknown;
}
