/**
 * The only module that touches protobuf: ModelProto <-> ir.Model, and external data.
 * Uses protobufjs with the ONNX schema in onnx.proto.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { byteSize, dtypeFromOnnx, numel, onnxDataType, type DType } from '../core/dtype.js';
import { Graph, Model, Node, Value, type AttrValue, type Dim } from './graph.js';
import { ExternalTensor, InMemoryTensor, type Tensor } from '../core/tensor.js';

// onnx.proto sits beside this file in src/; from dist/ir/ the same relative path reaches it.
const PROTO_PATH = fileURLToPath(new URL('../../src/ir/onnx.proto', import.meta.url));
let root: protobuf.Root | undefined;
function types() {
  root ??= protobuf.loadSync(PROTO_PATH);
  return { ModelProto: root.lookupType('onnx.ModelProto') };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
type P = any;

const ATTR_TYPES: Record<number, AttrValue['type']> = {
  1: 'float', 2: 'int', 3: 'string', 4: 'tensor', 5: 'graph', 6: 'floats', 7: 'ints', 8: 'strings',
  9: 'tensors', 10: 'graphs', 11: 'sparse_tensor', 12: 'sparse_tensors', 13: 'type_proto', 14: 'type_protos',
};
const ATTR_CODES = Object.fromEntries(Object.entries(ATTR_TYPES).map(([k, v]) => [v, Number(k)])) as Record<string, number>;

function num(x: unknown): number {
  if (typeof x === 'number') return x;
  if (x && typeof (x as { toNumber?: unknown }).toNumber === 'function') return (x as { toNumber(): number }).toNumber();
  return Number(x ?? 0);
}

export interface LoadOptions {
  /** folder that external-data locations are relative to (default: the model file's folder) */
  baseDir?: string;
  /** file name used in error messages */
  file?: string;
}

/** Reads an .onnx file. External data stays on disk (ExternalTensor), checked for location and range. */
export function loadModel(path: string): Model {
  if (!existsSync(path)) throw new ModelFormatError('FILE_MISSING', 'no such ONNX file', { file: path });
  return decodeModel(readFileSync(path), { baseDir: dirname(path), file: path });
}

export function decodeModel(bytes: Uint8Array, opts: LoadOptions = {}): Model {
  const file = opts.file ?? '<memory>';
  let mp: P;
  try {
    mp = types().ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelFormatError('ONNX_PROTOBUF', `not a valid ONNX protobuf (${(e as Error).message})`, { file, cause: e });
  }
  if (!mp.graph) throw new ModelFormatError('ONNX_NO_GRAPH', 'ModelProto has no graph (not an ONNX model?)', { file });
  const ctx: Ctx = { file, baseDir: opts.baseDir ? resolve(opts.baseDir) : undefined, fileSizes: new Map() };
  const model = new Model(decodeGraph(mp.graph, [], ctx));
  model.irVersion = num(mp.irVersion);
  model.opsetImports = new Map((mp.opsetImport ?? []).map((o: P) => [o.domain ?? '', num(o.version)]));
  model.producerName = mp.producerName ?? '';
  model.producerVersion = mp.producerVersion ?? '';
  model.domain = mp.domain ?? '';
  model.modelVersion = num(mp.modelVersion);
  model.docString = mp.docString || undefined;
  for (const e of mp.metadataProps ?? []) model.metadataProps.set(e.key ?? '', e.value ?? '');
  model.functions = mp.functions ?? [];
  model.trainingInfo = mp.trainingInfo ?? [];
  return model;
}

interface Ctx {
  file: string;
  baseDir?: string;
  fileSizes: Map<string, number>;
}

function decodeType(t: P): { dtype?: DType; shape?: Dim[] } {
  const tt = t?.tensorType;
  if (!tt) return {};
  const dtype = tt.elemType ? dtypeFromOnnx(tt.elemType) : undefined;
  const shape = tt.shape ? (tt.shape.dim ?? []).map((d: P): Dim => (d.value === 'dimValue' ? num(d.dimValue) : d.value === 'dimParam' ? d.dimParam : null)) : undefined;
  return { dtype, shape };
}

function decodeGraph(gp: P, outer: Map<string, Value>[], ctx: Ctx): Graph {
  const g = new Graph(gp.name ?? '');
  g.docString = gp.docString || undefined;
  const scope = new Map<string, Value>();
  for (const vi of gp.input ?? []) {
    const { dtype, shape } = decodeType(vi.type);
    const v = new Value(vi.name, dtype, shape);
    g.inputs.push(v);
    scope.set(v.name, v);
  }
  for (const tp of gp.initializer ?? []) {
    const t = decodeTensor(tp, ctx);
    const name = tp.name ?? '';
    // an initializer may also be listed as a graph input (IR < 4 style); the input wins its Value
    const existing = scope.get(name);
    if (existing) {
      existing.const = t;
      g.initializers.set(name, existing);
    } else scope.set(name, g.addInitializer(name, t));
  }
  // pass 1: outputs of every node, so subgraphs (decoded in pass 2) see the whole outer scope
  const pending: [Node, P][] = [];
  for (const np of gp.node ?? []) {
    const node = new Node(np.opType ?? '', np.name ?? '', np.domain ?? '');
    node.docString = np.docString || undefined;
    for (const e of np.metadataProps ?? []) node.metadata.set(e.key ?? '', e.value ?? '');
    for (const o of np.output ?? []) {
      const v = new Value(o);
      node.outputs.push(v);
      if (o) scope.set(o, v);
    }
    pending.push([node, np]);
  }
  const lookup = (name: string, node: Node): Value => {
    const v = scope.get(name) ?? outer.map((s) => s.get(name)).find((x) => x);
    if (!v) throw new ModelFormatError('ONNX_DANGLING_INPUT', `node '${node.name}' (${node.opType}) reads '${name}', which nothing defines`, { file: ctx.file });
    return v;
  };
  const scopes = [scope, ...outer];
  for (const [node, np] of pending) {
    for (const a of np.attribute ?? []) node.attributes.set(a.name, decodeAttr(a, scopes, ctx));
    for (const name of np.input ?? []) node.inputs.push(name ? lookup(name, node) : null);
    g.insert(node);
    for (const sg of node.subgraphs()) sg.parentNode = node;
  }
  for (const vi of gp.valueInfo ?? []) {
    const v = scope.get(vi.name);
    if (!v) continue;
    const { dtype, shape } = decodeType(vi.type);
    v.dtype ??= dtype;
    v.shape ??= shape;
  }
  for (const vi of gp.output ?? []) {
    const v = scope.get(vi.name) ?? outer.map((s) => s.get(vi.name)).find((x) => x);
    if (!v) throw new ModelFormatError('ONNX_DANGLING_OUTPUT', `graph output '${vi.name}' is not produced`, { file: ctx.file });
    const { dtype, shape } = decodeType(vi.type);
    v.dtype = dtype ?? v.dtype;
    v.shape = shape ?? v.shape;
    g.outputs.push(v);
  }
  return g;
}

function decodeAttr(a: P, scopes: Map<string, Value>[], ctx: Ctx): AttrValue {
  // Old exporters leave `type` unset: infer it from the field that is present.
  let code: number = a.type ?? 0;
  if (!code) {
    if (a.g) code = 5; else if (a.t) code = 4; else if (a.graphs?.length) code = 10; else if (a.tensors?.length) code = 9;
    else if (a.floats?.length) code = 6; else if (a.ints?.length) code = 7; else if (a.strings?.length) code = 8;
    else if (a.s?.length) code = 3; else if (a.f != null && a.f !== 0) code = 1; else code = 2;
  }
  const type = ATTR_TYPES[code];
  const dec = new TextDecoder();
  switch (type) {
    case 'float': return { type, value: a.f ?? 0 };
    case 'int': return { type, value: num(a.i) };
    case 'string': return { type, value: dec.decode(a.s ?? new Uint8Array()) };
    case 'tensor': return { type, value: decodeTensor(a.t, ctx) };
    case 'graph': return { type, value: decodeGraph(a.g, scopes, ctx) };
    case 'floats': return { type, value: [...(a.floats ?? [])] };
    case 'ints': return { type, value: (a.ints ?? []).map(num) };
    case 'strings': return { type, value: (a.strings ?? []).map((s: Uint8Array) => dec.decode(s)) };
    case 'tensors': return { type, value: (a.tensors ?? []).map((t: P) => decodeTensor(t, ctx)) };
    case 'graphs': return { type, value: (a.graphs ?? []).map((g: P) => decodeGraph(g, scopes, ctx)) };
    case 'sparse_tensor': return { type, value: a.sparseTensor };
    case 'sparse_tensors': return { type, value: a.sparseTensors };
    case 'type_proto': return { type, value: a.tp };
    case 'type_protos': return { type, value: a.typeProtos };
    default: throw new ModelFormatError('ONNX_ATTRIBUTE', `attribute '${a.name}' has unknown type ${code}`, { file: ctx.file });
  }
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

function decodeTensor(tp: P, ctx: Ctx): Tensor {
  const name: string = tp.name ?? '';
  const where = { file: ctx.file, tensor: name };
  const dtype = dtypeFromOnnx(tp.dataType ?? 0);
  if (!dtype) throw new ModelFormatError('ONNX_DTYPE', `unknown data_type ${tp.dataType}`, where);
  const shape = (tp.dims ?? []).map(num);
  if (!shape.every((d: number) => Number.isSafeInteger(d) && d >= 0)) throw new ModelFormatError('ONNX_SHAPE', `bad dims [${shape}]`, where);
  const length = byteSize(dtype, numel(shape));
  if (tp.dataLocation === 1) {
    if (!ctx.baseDir) throw new ModelFormatError('EXTERNAL_DATA_PATH', 'external data needs the model loaded from a file', where);
    const kv = new Map<string, string>((tp.externalData ?? []).map((e: P) => [e.key, e.value]));
    const location = kv.get('location') ?? '';
    const path = resolveExternalPath(ctx.baseDir, location, ctx.file, name);
    const offset = Number(kv.get('offset') ?? 0);
    const len = kv.has('length') ? Number(kv.get('length')) : length;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(len) || len < 0) {
      throw new ModelFormatError('EXTERNAL_DATA_RANGE', `bad offset/length '${kv.get('offset')}'/'${kv.get('length')}'`, where);
    }
    let size = ctx.fileSizes.get(path);
    if (size === undefined) ctx.fileSizes.set(path, (size = statSync(path).size));
    if (offset + len > size) {
      throw new ModelFormatError('EXTERNAL_DATA_RANGE', `offset ${offset} + length ${len} is beyond '${location}' (${size} bytes)`, where);
    }
    return new ExternalTensor(dtype, shape, path, offset, len, name);
  }
  if (tp.rawData && tp.rawData.length) {
    if (tp.rawData.length !== length) throw new ModelFormatError('TENSOR_SIZE', `raw_data has ${tp.rawData.length} bytes, shape needs ${length}`, where);
    return new InMemoryTensor(dtype, shape, new Uint8Array(tp.rawData));
  }
  return new InMemoryTensor(dtype, shape, typedFields(tp, dtype, numel(shape), where));
}

/** Data held in the typed repeated fields instead of raw_data. */
function typedFields(tp: P, dtype: DType, n: number, where: { file: string; tensor: string }): Uint8Array {
  const take = <T>(arr: T[] | undefined): T[] => {
    const a = arr ?? [];
    if (n > 0 && a.length !== n) throw new ModelFormatError('TENSOR_SIZE', `${a.length} values for ${n} elements`, where);
    return a;
  };
  let out: ArrayBufferView;
  switch (dtype) {
    case 'float32': out = Float32Array.from(take(tp.floatData)); break;
    case 'float64': out = Float64Array.from(take(tp.doubleData)); break;
    case 'int64': out = BigInt64Array.from(take(tp.int64Data).map((x: unknown) => BigInt(String(x)))); break;
    case 'uint64': out = BigUint64Array.from(take(tp.uint64Data).map((x: unknown) => BigInt(String(x)))); break;
    case 'uint32': out = Uint32Array.from(take(tp.uint64Data).map(num)); break;
    case 'int32': out = Int32Array.from(take(tp.int32Data)); break;
    case 'int16': out = Int16Array.from(take(tp.int32Data)); break;
    case 'int8': out = Int8Array.from(take(tp.int32Data)); break;
    case 'uint16': case 'float16': case 'bfloat16': out = Uint16Array.from(take(tp.int32Data)); break;
    case 'uint8': case 'bool': out = Uint8Array.from(take(tp.int32Data)); break;
    default: throw new ModelFormatError('ONNX_DTYPE', `tensors of ${dtype} without raw_data are not supported`, where);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Where encodeModel puts each initializer's bytes: inline, or a range of an external file. */
export type Placement = (name: string, t: Tensor) => { location: string; offset: number; length: number } | undefined;

function encodeType(v: Value): P {
  if (!v.dtype) return undefined;
  const tt: P = { elemType: onnxDataType(v.dtype) };
  if (v.shape) tt.shape = { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) };
  return { tensorType: tt };
}

function encodeTensor(name: string, t: Tensor, place?: Placement): P {
  const tp: P = { name, dims: [...t.shape], dataType: onnxDataType(t.dtype) };
  const ext = place?.(name, t);
  if (ext) {
    tp.dataLocation = 1;
    tp.externalData = [
      { key: 'location', value: ext.location },
      { key: 'offset', value: String(ext.offset) },
      { key: 'length', value: String(ext.length) },
    ];
  } else tp.rawData = t.bytes();
  return tp;
}

function encodeAttr(name: string, a: AttrValue, place?: Placement): P {
  const p: P = { name, type: ATTR_CODES[a.type] };
  const enc = new TextEncoder();
  switch (a.type) {
    case 'float': p.f = a.value; break;
    case 'int': p.i = a.value; break;
    case 'string': p.s = enc.encode(a.value); break;
    case 'tensor': p.t = encodeTensor('', a.value); break;
    case 'graph': p.g = encodeGraph(a.value, place); break;
    case 'floats': p.floats = a.value; break;
    case 'ints': p.ints = a.value; break;
    case 'strings': p.strings = a.value.map((s) => enc.encode(s)); break;
    case 'tensors': p.tensors = a.value.map((t) => encodeTensor('', t)); break;
    case 'graphs': p.graphs = a.value.map((g) => encodeGraph(g, place)); break;
    case 'sparse_tensor': p.sparseTensor = a.value; break;
    case 'sparse_tensors': p.sparseTensors = a.value; break;
    case 'type_proto': p.tp = a.value; break;
    case 'type_protos': p.typeProtos = a.value; break;
  }
  return p;
}

function encodeGraph(g: Graph, place?: Placement): P {
  const io = new Set<Value>([...g.inputs, ...g.outputs]);
  const valueInfo: P[] = [];
  const nodes: P[] = [];
  for (const n of g.nodes()) {
    const np: P = {
      name: n.name, opType: n.opType, domain: n.domain || undefined, docString: n.docString,
      input: n.inputs.map((v) => v?.name ?? ''), output: n.outputs.map((v) => v.name),
      attribute: [...n.attributes].map(([k, a]) => encodeAttr(k, a, place)),
      metadataProps: n.metadata.size ? [...n.metadata].map(([key, value]) => ({ key, value })) : undefined,
    };
    nodes.push(np);
    for (const o of n.outputs) if (o.dtype && !io.has(o) && o.name) valueInfo.push({ name: o.name, type: encodeType(o) });
  }
  return {
    name: g.name, docString: g.docString, node: nodes,
    initializer: [...g.initializers].map(([name, v]) => encodeTensor(name, v.const!, place)),
    input: g.inputs.map((v) => ({ name: v.name, type: encodeType(v) })),
    output: g.outputs.map((v) => ({ name: v.name, type: encodeType(v) })),
    valueInfo,
  };
}

/** Encodes a model as ModelProto bytes. Without `place`, every weight is inline (raw_data). */
export function encodeModel(model: Model, place?: Placement): Uint8Array {
  const { ModelProto } = types();
  const mp: P = {
    irVersion: model.irVersion,
    opsetImport: [...model.opsetImports].map(([domain, version]) => ({ domain, version })),
    producerName: model.producerName, producerVersion: model.producerVersion, domain: model.domain,
    modelVersion: model.modelVersion, docString: model.docString,
    graph: encodeGraph(model.graph, place),
    metadataProps: [...model.metadataProps].map(([key, value]) => ({ key, value })),
    functions: model.functions, trainingInfo: model.trainingInfo,
  };
  return ModelProto.encode(ModelProto.fromObject(mp)).finish();
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
