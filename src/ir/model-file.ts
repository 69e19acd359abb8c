/**
 * ONNX model files: loading and saving `.onnx` with weights in external data files beside it
 * (placement, 4 KiB alignment, splitting below 2 GB, path checks that keep every external-data
 * location inside the model's folder, atomic writes). The protobuf itself is serde.ts's.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { byteSize, numel } from '../core/dtype.js';
import { ExternalTensor, type Tensor } from '../core/tensor.js';
import type { Graph, Model, Value } from './graph.js';
import { decodeModel, encodeModel, type ExternalDataRef, type Placement } from './serde.js';

/** Reads an .onnx file. External data stays on disk (ExternalTensor), checked for location and range. */
export function loadModel(path: string): Model {
  if (!existsSync(path)) throw new ModelFormatError('FILE_MISSING', 'no such ONNX file', { file: path });
  return decodeModel(readFileSync(path), { file: path, external: externalDataIn(dirname(path), path) });
}

/**
 * A resolver for decodeModel: external data read from files under `baseDir` (never outside it,
 * symlinks included), each range checked against its file's size.
 */
export function externalDataIn(baseDir: string, file: string): (ref: ExternalDataRef) => Tensor {
  const base = resolve(baseDir);
  const sizes = new Map<string, number>();
  return (ref) => {
    const path = resolveExternalPath(base, ref.location, file, ref.tensor);
    const len = ref.length ?? byteSize(ref.dtype, numel(ref.shape));
    let size = sizes.get(path);
    if (size === undefined) sizes.set(path, (size = statSync(path).size));
    if (ref.offset + len > size) {
      throw new ModelFormatError('EXTERNAL_DATA_RANGE', `offset ${ref.offset} + length ${len} is beyond '${ref.location}' (${size} bytes)`, { file, tensor: ref.tensor });
    }
    return new ExternalTensor(ref.dtype, ref.shape, path, ref.offset, len, ref.tensor);
  };
}

/** Resolves an external-data location, refusing anything outside the model's folder. */
export function resolveExternalPath(baseDir: string, location: string, file: string, tensor?: string): string {
  const where = { file, tensor };
  if (!location || isAbsolute(location) || location.startsWith('\\') || /^[a-zA-Z]:/.test(location)) {
    throw new ModelFormatError('EXTERNAL_DATA_PATH', `external-data location '${location}' is absolute or empty; it must be relative to the model's folder`, where);
  }
  const norm = normalize(location);
  if (norm === '..' || norm.startsWith(`..${sep}`) || norm.split(/[\\/]/).includes('..')) {
    throw new ModelFormatError('EXTERNAL_DATA_PATH', `external-data location '${location}' leaves the model's folder`, where);
  }
  const full = join(baseDir, norm);
  if (!existsSync(full)) throw new ModelFormatError('EXTERNAL_DATA_MISSING', `external-data file '${location}' does not exist`, where);
  // a symlink may still point out of the folder
  const realBase = realpathSync(baseDir);
  const real = realpathSync(full);
  const rel = relative(realBase, real);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new ModelFormatError('EXTERNAL_DATA_PATH', `external-data location '${location}' resolves outside the model's folder (${real})`, where);
  }
  return real;
}

export interface SaveOptions {
  /** keep weights in external files (default true; ONNX protobuf cannot exceed 2 GB) */
  externalData?: boolean;
  /** name of the (first) external file; later ones get `.1`, `.2`… (default `<model>.onnx_data`… `model.onnx_data`) */
  dataFile?: string;
  /** start a new external file before this many bytes (default 1.9e9: under 2 GB, and under protobuf's 2 GiB, per file) */
  maxFileBytes?: number;
  /** tensors smaller than this stay inline (default 1024 bytes) */
  sizeThreshold?: number;
  /** called after each initializer is written: (done, total) */
  onTensor?: (done: number, total: number) => void;
}

const ALIGN = 4096;

/**
 * Saves a model to `path` with weights in external data files beside it (4 KiB-aligned offsets,
 * files split below 2 GB). Everything is written under temporary names and renamed into place
 * at the end; afterwards the model's external initializers point at the new files.
 */
export function saveModel(model: Model, path: string, opts: SaveOptions = {}): void {
  const dir = dirname(resolve(path));
  mkdirSync(dir, { recursive: true });
  const external = opts.externalData ?? true;
  const maxBytes = opts.maxFileBytes ?? 1.9e9;
  const threshold = opts.sizeThreshold ?? 1024;
  const base = opts.dataFile ?? `${basename(path)}_data`;
  const stamp = `${process.pid}.${Date.now()}`;
  interface Out { name: string; tmp: string; fd: number; size: number }
  const files: Out[] = [];
  const placed: { value: Value; location: string; offset: number; length: number; t: Tensor }[] = [];
  const valueOf = new Map<string, Value>();
  const collect = (g: Graph) => {
    for (const [k, v] of g.initializers) valueOf.set(k, v);
    for (const n of g.nodes()) for (const sg of n.subgraphs()) collect(sg);
  };
  collect(model.graph);
  let done = 0;
  const place: Placement | undefined = external
    ? (name, t) => {
        opts.onTensor?.(++done, valueOf.size);
        if (t.byteLength < threshold) return undefined;
        let f = files[files.length - 1];
        const start = f ? Math.ceil(f.size / ALIGN) * ALIGN : 0;
        if (!f || (start + t.byteLength > maxBytes && f.size > 0)) {
          const fname = files.length === 0 ? base : `${base}.${files.length}`;
          f = { name: fname, tmp: join(dir, `.${fname}.${stamp}.tmp`), fd: -1, size: 0 };
          f.fd = openSync(f.tmp, 'w');
          files.push(f);
        }
        const offset = Math.ceil(f.size / ALIGN) * ALIGN;
        if (offset > f.size) writeAllAt(f.fd, new Uint8Array(offset - f.size), f.size);
        writeAllAt(f.fd, t.bytes(), offset);
        f.size = offset + t.byteLength;
        const v = valueOf.get(name);
        if (v) placed.push({ value: v, location: f.name, offset, length: t.byteLength, t });
        return { location: f.name, offset, length: t.byteLength };
      }
    : undefined;
  const tmpModel = join(dir, `.${basename(path)}.${stamp}.tmp`);
  try {
    const bytes = encodeModel(model, place);
    const fd = openSync(tmpModel, 'w');
    try {
      writeAllAt(fd, bytes, 0);
    } finally {
      closeSync(fd);
    }
    for (const f of files) closeSync(f.fd);
    for (const f of files) renameSync(f.tmp, join(dir, f.name));
    renameSync(tmpModel, path);
  } catch (e) {
    for (const f of files) {
      try { closeSync(f.fd); } catch { /* already closed */ }
      rmSync(f.tmp, { force: true });
    }
    rmSync(tmpModel, { force: true });
    throw e;
  }
  // the old files may have been replaced: point the model at what was just written
  for (const p of placed) p.value.const = new ExternalTensor(p.t.dtype, p.t.shape, join(dir, p.location), p.offset, p.length, p.value.name);
}

function writeAllAt(fd: number, b: Uint8Array, pos: number) {
  let done = 0;
  while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done, pos + done);
}

/** Size of a file in bytes (used by inspect for external files). */
export function fileSize(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}
