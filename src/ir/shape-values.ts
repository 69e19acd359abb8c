/**
 * What exporters compute from shapes at run time, worked out where it is static: torch.onnx
 * writes `x.view(batch, -1, heads, dim)` as a Reshape to
 * `Concat(Unsqueeze(Gather(Shape(x), 0)), -1, heads, Gather(Shape(x), -1) / heads)`, and a scale
 * as `Sqrt(1 / Sqrt(Shape(q)[-1]))`. A value is a short int or float vector; an entry is a number,
 * `'batch'` (dim 0 of a tensor, unknown until run time) or undefined (not known). Dims come from
 * the inferred shapes (type-inference.ts, which reads computed Reshape targets through here).
 */
import type { Node, Value } from './graph.js';
import { constNumbers } from './match.js';

export type ShapeEntry = number | 'batch' | undefined;

const INT_TYPES = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64']);
/** ONNX TensorProto data types of the integers (Cast's `to`) */
const INT_ENUMS = new Set([2, 3, 4, 5, 6, 7, 12, 13]);

/** Dim `i` (negative from the end) of `v`, from its inferred shape (run `inferDtypes` first). */
export function dimAt(v: Value | null | undefined, i: number): ShapeEntry {
  const shape = v?.shape ?? v?.const?.shape;
  const d = shape?.[i < 0 ? shape.length + i : i];
  return typeof d === 'number' ? d : undefined;
}

/** The entries of a small int or float vector (or scalar) `v`, as far as they are static. */
export function shapeValues(v: Value | null | undefined, depth = 0): ShapeEntry[] | undefined {
  if (!v || depth > 16) return undefined;
  const c = constNumbers(v);
  if (c) return c.length <= 64 ? c : undefined;
  const p = v.producer;
  if (!p || p.domain) return undefined;
  const arg = (i: number) => shapeValues(p.inputs[i], depth + 1);
  switch (p.opType) {
    case 'Gather': {
      const s = shapeOfShape(p.inputs[0]);
      const idx = constNumbers(p.inputs[1]);
      if (!s || !idx || p.attrInt('axis', 0) !== 0) return undefined;
      return idx.map((i) => (i === 0 ? (dimAt(s, 0) ?? 'batch') : dimAt(s, i)));
    }
    case 'Slice': {
      // Shape(t)[-1:]: the last dim
      const s = shapeOfShape(p.inputs[0]);
      const starts = constNumbers(p.inputs[1]);
      const ends = constNumbers(p.inputs[2]);
      if (!s || starts?.length !== 1 || ends?.length !== 1 || starts[0] !== -1 || ends[0]! < 2 ** 31 || p.inputs[3] || p.inputs[4]) return undefined;
      return [dimAt(s, -1)];
    }
    case 'Unsqueeze': case 'Squeeze': case 'Identity':
      return arg(0);
    case 'Cast': {
      const x = arg(0);
      return x && (INT_ENUMS.has(p.attrInt('to', 0)) ? x.map((e) => (typeof e === 'number' ? Math.trunc(e) : e)) : x);
    }
    case 'Concat': {
      if (p.attrInt('axis', 0) !== 0) return undefined;
      const parts = p.inputs.map((x) => shapeValues(x, depth + 1));
      return parts.every((x) => x) ? parts.flatMap((x) => x!) : undefined;
    }
    case 'Sqrt': {
      const x = arg(0);
      return x?.map((e) => (typeof e === 'number' ? Math.sqrt(e) : undefined));
    }
    case 'Add': case 'Sub': case 'Mul': case 'Div':
      return arithmetic(p, arg(0), arg(1));
    default:
      return undefined;
  }
}

/** The tensor whose shape `v` is: `Shape(t)` (the whole shape) gives t. */
function shapeOfShape(v: Value | null | undefined): Value | undefined {
  const p = v?.producer;
  return p?.opType === 'Shape' && !p.domain && !p.attr('start') && !p.attr('end') ? p.inputs[0] ?? undefined : undefined;
}

function arithmetic(p: Node, a: ShapeEntry[] | undefined, b: ShapeEntry[] | undefined): ShapeEntry[] | undefined {
  if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return undefined;
  const ints = INT_TYPES.has(p.inputs[0]?.dtype ?? '') && INT_TYPES.has(p.inputs[1]?.dtype ?? '');
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const x = a[a.length === 1 ? 0 : i];
    const y = b[b.length === 1 ? 0 : i];
    if (typeof x !== 'number' || typeof y !== 'number') return undefined;
    switch (p.opType) {
      case 'Add': return x + y;
      case 'Sub': return x - y;
      case 'Mul': return x * y;
      default: return y === 0 ? undefined : ints ? Math.trunc(x / y) : x / y;
    }
  });
}
