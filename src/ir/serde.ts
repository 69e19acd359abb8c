/**
 * The only module that touches protobuf: ModelProto bytes <-> ir.Model. No file I/O: external
 * data is handed to a resolver (model-file.ts gives one that reads beside the .onnx file), and
 * encoding asks a placement callback where each initializer's bytes go.
 * The ONNX schema is compiled into onnx-schema.ts (scripts/gen-onnx-schema.mjs), not read at run time.
 */
import protobuf from 'protobufjs';
import { ModelFormatError } from '../errors.js';
import { byteSize, dtypeFromOnnx, numel, onnxDataType, type DType } from '../core/dtype.js';
import { Graph, Model, Node, Value, type AttrValue, type Dim } from './graph.js';
import { InMemoryTensor, type Tensor } from '../core/tensor.js';
import { onnxSchema } from './onnx-schema.js';

let root: protobuf.Root | undefined;
function types() {
  root ??= protobuf.Root.fromJSON(onnxSchema);
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

/** A tensor stored outside the protobuf: where its bytes are, as the TensorProto says. */
export interface ExternalDataRef {
  location: string;
  offset: number;
  /** bytes, when the TensorProto gives it */
  length?: number;
  dtype: DType;
  shape: number[];
  /** the initializer's name */
  tensor: string;
}

export interface DecodeOptions {
  /** file name used in error messages */
  file?: string;
  /** turns external-data references into tensors (without it, external data is an error) */
  external?: (ref: ExternalDataRef) => Tensor;
}

export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  const file = opts.file ?? '<memory>';
  let mp: P;
  try {
    mp = types().ModelProto.decode(bytes);
  } catch (e) {
    throw new ModelFormatError('ONNX_PROTOBUF', `not a valid ONNX protobuf (${(e as Error).message})`, { file, cause: e });
  }
  if (!mp.graph) throw new ModelFormatError('ONNX_NO_GRAPH', 'ModelProto has no graph (not an ONNX model?)', { file });
  const ctx: Ctx = { file, external: opts.external };
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
  external?: (ref: ExternalDataRef) => Tensor;
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

function decodeTensor(tp: P, ctx: Ctx): Tensor {
  const name: string = tp.name ?? '';
  const where = { file: ctx.file, tensor: name };
  const dtype = dtypeFromOnnx(tp.dataType ?? 0);
  if (!dtype) throw new ModelFormatError('ONNX_DTYPE', `unknown data_type ${tp.dataType}`, where);
  const shape = (tp.dims ?? []).map(num);
  if (!shape.every((d: number) => Number.isSafeInteger(d) && d >= 0)) throw new ModelFormatError('ONNX_SHAPE', `bad dims [${shape}]`, where);
  const length = byteSize(dtype, numel(shape));
  if (tp.dataLocation === 1) {
    if (!ctx.external) throw new ModelFormatError('EXTERNAL_DATA_PATH', 'external data needs the model loaded from a file', where);
    const kv = new Map<string, string>((tp.externalData ?? []).map((e: P) => [e.key, e.value]));
    const offset = Number(kv.get('offset') ?? 0);
    const len = kv.has('length') ? Number(kv.get('length')) : undefined;
    if (!Number.isSafeInteger(offset) || offset < 0 || (len !== undefined && (!Number.isSafeInteger(len) || len < 0))) {
      throw new ModelFormatError('EXTERNAL_DATA_RANGE', `bad offset/length '${kv.get('offset')}'/'${kv.get('length')}'`, where);
    }
    return ctx.external({ location: kv.get('location') ?? '', offset, length: len, dtype, shape, tensor: name });
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
