import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { ModelFormatError } from '../errors.js';
import { byteSize, bytesOf, numel, viewAs, type DType, type TypedArray } from './dtype.js';

/**
 * A constant tensor: dtype and shape are known without touching the data. Three kinds:
 * in memory, a byte range of a file (safetensors or ONNX external data), and lazy (computed on
 * demand, e.g. a dtype conversion of a file tensor), so that huge checkpoints stream through
 * conversion a tensor at a time.
 */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Raw little-endian bytes; may be a view, do not mutate. */
  bytes(): Uint8Array;
  /** Where the bytes live on disk, when they do (lets writers and inspect avoid reading). */
  readonly location?: { file: string; offset: number; length: number };
}

export function tensorData(t: Tensor): TypedArray {
  return viewAs(t.dtype, t.bytes());
}

export class InMemoryTensor implements Tensor {
  readonly byteLength: number;
  private readonly raw: Uint8Array;
  constructor(readonly dtype: DType, readonly shape: readonly number[], data: TypedArray | Uint8Array) {
    this.raw = data instanceof Uint8Array ? data : bytesOf(data);
    this.byteLength = byteSize(dtype, numel(shape));
    if (this.raw.byteLength !== this.byteLength) {
      throw new ModelFormatError('TENSOR_SIZE', `data has ${this.raw.byteLength} bytes but ${dtype}[${shape.join(',')}] needs ${this.byteLength}`);
    }
  }
  bytes(): Uint8Array {
    return this.raw;
  }
}

/** A byte range of a file, read on each call to bytes() and never cached. */
export class ExternalTensor implements Tensor {
  readonly byteLength: number;
  readonly location: { file: string; offset: number; length: number };
  constructor(readonly dtype: DType, readonly shape: readonly number[], file: string, offset: number, length: number, name?: string) {
    this.byteLength = byteSize(dtype, numel(shape));
    if (length !== this.byteLength) {
      throw new ModelFormatError('TENSOR_SIZE', `data length ${length} disagrees with ${dtype}[${shape.join(',')}] = ${this.byteLength} bytes`, { file, tensor: name });
    }
    this.location = { file, offset, length };
  }
  bytes(): Uint8Array {
    return readRange(this.location.file, this.location.offset, this.location.length);
  }
}

/** A tensor computed on demand from a function (not cached: memory stays bounded when streaming). */
export class LazyTensor implements Tensor {
  readonly byteLength: number;
  constructor(readonly dtype: DType, readonly shape: readonly number[], private readonly produce: () => Uint8Array) {
    this.byteLength = byteSize(dtype, numel(shape));
  }
  bytes(): Uint8Array {
    const b = this.produce();
    if (b.byteLength !== this.byteLength) {
      throw new ModelFormatError('TENSOR_SIZE', `lazy tensor produced ${b.byteLength} bytes, expected ${this.byteLength}`);
    }
    return b;
  }
}

export function readRange(file: string, offset: number, length: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new ModelFormatError('FILE_MISSING', `cannot open: ${(e as Error).message}`, { file, cause: e });
  }
  try {
    const size = fstatSync(fd).size;
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new ModelFormatError('OUT_OF_RANGE', `byte range [${offset}, ${offset + length}) is beyond the file's ${size} bytes`, { file });
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, length - done, offset + done);
      if (n === 0) throw new ModelFormatError('OUT_OF_RANGE', `unexpected end of file at ${offset + done}`, { file });
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Convenience constructors. */
export const tensor = {
  f32: (shape: readonly number[], data?: ArrayLike<number>) =>
    new InMemoryTensor('float32', shape, data ? Float32Array.from(data) : new Float32Array(numel(shape))),
  i64: (shape: readonly number[], data: ArrayLike<number | bigint>) =>
    new InMemoryTensor('int64', shape, BigInt64Array.from(Array.from(data, (x) => BigInt(x)))),
  i32: (shape: readonly number[], data: ArrayLike<number>) => new InMemoryTensor('int32', shape, Int32Array.from(data)),
  scalarF32: (x: number) => new InMemoryTensor('float32', [], Float32Array.of(x)),
  scalarI64: (x: number) => new InMemoryTensor('int64', [], BigInt64Array.of(BigInt(x))),
};
