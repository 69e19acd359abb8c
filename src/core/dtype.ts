/**
 * Element types, named as onnxruntime's JS API names them, with their ONNX `TensorProto.DataType`
 * codes and sizes. Sub-byte and float8 types are recognised (so files holding them are read and
 * described) even where no arithmetic on them exists.
 */
export type DType =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int64' | 'int32' | 'int16' | 'int8'
  | 'uint64' | 'uint32' | 'uint16' | 'uint8'
  | 'bool' | 'string'
  | 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz'
  | 'uint4' | 'int4' | 'float4e2m1' | 'complex64' | 'complex128';

interface DTypeInfo { onnx: number; bits: number }

const INFO: Record<DType, DTypeInfo> = {
  float32: { onnx: 1, bits: 32 },
  uint8: { onnx: 2, bits: 8 },
  int8: { onnx: 3, bits: 8 },
  uint16: { onnx: 4, bits: 16 },
  int16: { onnx: 5, bits: 16 },
  int32: { onnx: 6, bits: 32 },
  int64: { onnx: 7, bits: 64 },
  string: { onnx: 8, bits: 0 },
  bool: { onnx: 9, bits: 8 },
  float16: { onnx: 10, bits: 16 },
  float64: { onnx: 11, bits: 64 },
  uint32: { onnx: 12, bits: 32 },
  uint64: { onnx: 13, bits: 64 },
  complex64: { onnx: 14, bits: 64 },
  complex128: { onnx: 15, bits: 128 },
  bfloat16: { onnx: 16, bits: 16 },
  float8e4m3fn: { onnx: 17, bits: 8 },
  float8e4m3fnuz: { onnx: 18, bits: 8 },
  float8e5m2: { onnx: 19, bits: 8 },
  float8e5m2fnuz: { onnx: 20, bits: 8 },
  uint4: { onnx: 21, bits: 4 },
  int4: { onnx: 22, bits: 4 },
  float4e2m1: { onnx: 23, bits: 4 },
};

const BY_ONNX = new Map<number, DType>(Object.entries(INFO).map(([k, v]) => [v.onnx, k as DType]));

export function onnxDataType(dtype: DType): number {
  return INFO[dtype].onnx;
}

export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(INFO, s);
}

/** Bytes taken by `count` elements (sub-byte types pack two to a byte, rounded up). */
export function byteSize(dtype: DType, count: number): number {
  return Math.ceil((INFO[dtype].bits * count) / 8);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export type TypedArray =
  | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array
  | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * A typed-array view over raw little-endian bytes. float16/bfloat16 come back as their raw 16-bit
 * patterns in a Uint16Array; types without a JS array type come back as bytes.
 */
export function viewAs(dtype: DType, bytes: Uint8Array): TypedArray {
  // Typed arrays need aligned offsets: copy when the view is not aligned.
  const align = Math.max(1, Math.min(8, INFO[dtype].bits / 8));
  let b = bytes;
  if (b.byteOffset % align !== 0) b = new Uint8Array(b);
  const { buffer, byteOffset, byteLength } = b;
  switch (dtype) {
    case 'float32': return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'float64': return new Float64Array(buffer, byteOffset, byteLength / 8);
    case 'int64': return new BigInt64Array(buffer, byteOffset, byteLength / 8);
    case 'uint64': return new BigUint64Array(buffer, byteOffset, byteLength / 8);
    case 'int32': return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'uint32': return new Uint32Array(buffer, byteOffset, byteLength / 4);
    case 'int16': return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'uint16': case 'float16': case 'bfloat16': return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'int8': return new Int8Array(buffer, byteOffset, byteLength);
    default: return new Uint8Array(buffer, byteOffset, byteLength);
  }
}

export function bytesOf(a: TypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
