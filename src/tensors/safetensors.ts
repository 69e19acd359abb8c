import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { ModelFormatError } from '../errors.js';
import { byteSize, numel, type DType } from '../core/dtype.js';
import { ExternalTensor, type Tensor } from '../core/tensor.js';
import { atomicWrite } from './atomic.js';

/** safetensors dtype names <-> ours. F8 types are recognised so such files can be described. */
const ST_TO_DTYPE: Record<string, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8',
  U64: 'uint64', U32: 'uint32', U16: 'uint16', U8: 'uint8', BOOL: 'bool',
  F8_E4M3: 'float8e4m3fn', F8_E5M2: 'float8e5m2',
};
const DTYPE_TO_ST = Object.fromEntries(Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k])) as Record<string, string>;

/** Headers above this are refused before allocation (real checkpoints stay far below it). */
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** absolute byte offset in the file, and length */
  offset: number;
  length: number;
}

/**
 * An opened safetensors file: the header is parsed and validated, tensor data stays on disk and
 * is read tensor by tensor, by offset.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly entries: Map<string, SafetensorsEntry>,
    readonly metadata: Record<string, string>,
    readonly headerLength: number,
    /** the file came from the Rust writer's layout (`__metadata__` first); see writeSafetensors */
    readonly layout: SafetensorsLayout,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new ModelFormatError('FILE_MISSING', `cannot open safetensors file: ${(e as Error).message}`, { file: path, cause: e });
    }
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new ModelFormatError('SAFETENSORS_TRUNCATED', `file has ${size} bytes, too short for a safetensors header`, { file: path });
      const lenBuf = Buffer.alloc(8);
      readSync(fd, lenBuf, 0, 8, 0);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(size - 8)) {
        throw new ModelFormatError('SAFETENSORS_HEADER_SIZE', `header length ${n} is beyond the file's ${size} bytes`, { file: path });
      }
      if (n > BigInt(MAX_HEADER)) {
        throw new ModelFormatError('SAFETENSORS_HEADER_SIZE', `header length ${n} exceeds the ${MAX_HEADER}-byte limit`, { file: path });
      }
      const hlen = Number(n);
      const hbuf = Buffer.alloc(hlen);
      readSync(fd, hbuf, 0, hlen, 8);
      let header: unknown;
      try {
        header = JSON.parse(hbuf.toString('utf8'));
      } catch (e) {
        throw new ModelFormatError('SAFETENSORS_HEADER_JSON', `header is not valid JSON (${(e as Error).message})`, { file: path, cause: e });
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new ModelFormatError('SAFETENSORS_HEADER_JSON', 'header is not a JSON object', { file: path });
      }
      const dataStart = 8 + hlen;
      const dataSize = size - dataStart;
      const entries = new Map<string, SafetensorsEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          metadata = parseMetadata(raw, path);
          continue;
        }
        entries.set(name, parseEntry(name, raw, path, dataStart, dataSize));
      }
      checkOverlaps([...entries.values()], path);
      const layout: SafetensorsLayout = hbuf.subarray(0, 15).toString() === '{"__metadata__"' ? 'rust' : 'python';
      return new SafetensorsFile(path, entries, metadata, hlen, layout);
    } finally {
      closeSync(fd);
    }
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  tensor(name: string): Tensor {
    const e = this.entries.get(name);
    if (!e) throw new ModelFormatError('TENSOR_MISSING', 'no such tensor', { file: this.path, tensor: name });
    return new ExternalTensor(e.dtype, e.shape, this.path, e.offset, e.length, name);
  }
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ModelFormatError('SAFETENSORS_METADATA', '__metadata__ is not an object of strings', { file });
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') throw new ModelFormatError('SAFETENSORS_METADATA', `__metadata__.${k} is not a string`, { file });
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, raw: unknown, file: string, dataStart: number, dataSize: number): SafetensorsEntry {
  const bad = (msg: string, code = 'SAFETENSORS_ENTRY') => new ModelFormatError(code, msg, { file, tensor: name });
  if (typeof raw !== 'object' || raw === null) throw bad('header entry is not an object');
  const { dtype: st, shape, data_offsets: offs } = raw as Record<string, unknown>;
  if (typeof st !== 'string') throw bad('missing dtype');
  const dtype = ST_TO_DTYPE[st];
  if (!dtype) throw bad(`unknown dtype '${st}' (known: ${Object.keys(ST_TO_DTYPE).join(', ')})`, 'SAFETENSORS_DTYPE');
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad('shape is not a list of non-negative integers');
  if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad('data_offsets is not [begin, end]');
  const [begin, end] = offs as [number, number];
  if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before begin`, 'SAFETENSORS_OFFSETS');
  if (end > dataSize) throw bad(`data_offsets [${begin}, ${end}] past the end of the data (${dataSize} bytes)`, 'SAFETENSORS_OFFSETS');
  const expect = byteSize(dtype, numel(shape as number[]));
  if (end - begin !== expect) {
    throw bad(`data length ${end - begin} disagrees with shape [${shape.join(',')}] × ${st} = ${expect} bytes`, 'SAFETENSORS_LENGTH');
  }
  return { name, dtype, shape: shape as number[], offset: dataStart + begin, length: end - begin };
}

function checkOverlaps(entries: SafetensorsEntry[], file: string) {
  const sorted = entries.filter((e) => e.length > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.length) {
      throw new ModelFormatError('SAFETENSORS_OVERLAP', `data overlaps tensor '${prev.name}'`, { file, tensor: cur.name });
    }
  }
}

export interface SafetensorsWriteEntry {
  name: string;
  tensor: Tensor;
}

/**
 * Two header layouts exist in the wild. 'python' (the fixtures' reference writer): keys sorted,
 * `__metadata__` last. 'rust' (the `safetensors` library that torch and diffusers call):
 * `__metadata__` first, tensors ordered by dtype (widest first, in the library's enum order) then
 * name. Both keep data contiguous in header order and pad the header with spaces to 8 bytes.
 */
export type SafetensorsLayout = 'python' | 'rust';

// The Rust library's Dtype enum order; it sorts by it descending.
const RUST_DTYPE_ORDER = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64'];

const byName = (a: SafetensorsWriteEntry, b: SafetensorsWriteEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Writes a safetensors file in the given layout, so that re-writing a file read with
 * SafetensorsFile reproduces it byte for byte. Metadata keeps its key order. Tensors are read one
 * at a time (streaming) and the file appears atomically.
 */
export function writeSafetensors(
  path: string,
  tensors: Iterable<SafetensorsWriteEntry> | Map<string, Tensor>,
  metadata?: Record<string, string>,
  layout: SafetensorsLayout = 'python',
): void {
  const list: SafetensorsWriteEntry[] = tensors instanceof Map
    ? [...tensors].map(([name, tensor]) => ({ name, tensor }))
    : [...tensors];
  if (layout === 'rust') {
    const rank = (e: SafetensorsWriteEntry) => RUST_DTYPE_ORDER.indexOf(DTYPE_TO_ST[e.tensor.dtype] ?? '');
    list.sort((a, b) => rank(b) - rank(a) || byName(a, b));
  } else list.sort(byName);
  const parts: string[] = [];
  let off = 0;
  for (const { name, tensor } of list) {
    const st = DTYPE_TO_ST[tensor.dtype];
    if (!st) throw new ModelFormatError('SAFETENSORS_DTYPE', `dtype ${tensor.dtype} cannot be stored in safetensors`, { file: path, tensor: name });
    parts.push(`${JSON.stringify(name)}:{"dtype":"${st}","shape":[${tensor.shape.join(',')}],"data_offsets":[${off},${off + tensor.byteLength}]}`);
    off += tensor.byteLength;
  }
  if (metadata && Object.keys(metadata).length) {
    const meta = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    const entry = `"__metadata__":{${meta.join(',')}}`;
    if (layout === 'rust') parts.unshift(entry);
    else parts.push(entry);
  }
  let json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  atomicWrite(path, (fd) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const { tensor } of list) writeAll(fd, tensor.bytes());
  });
}

export function writeAll(fd: number, b: Uint8Array) {
  let done = 0;
  while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
}
