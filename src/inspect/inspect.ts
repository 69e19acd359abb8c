import { readJsonObject } from '../json.js';
import { checkRegularFile, fileError } from '../fs/files.js';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { numel, type DType } from '../core/dtype.js';
import { allNodes, type Dim, type Graph, type Value } from '../ir/graph.js';
import { loadModel } from '../ir/model-file.js';
import { Checkpoint, findWeights } from '../tensors/checkpoint.js';

export interface IOInfo { name: string; dtype: DType | 'unknown'; shape: Dim[] | null }
export interface DTypeStats { tensors: number; count: number; bytes: number }
export interface InspectReport {
  path: string;
  kind: 'onnx' | 'safetensors' | 'pipeline';
  inputs: IOInfo[];
  outputs: IOInfo[];
  /** op type → count, subgraphs included; non-default domains qualified (`com.microsoft.MatMulNBits`) */
  ops: Record<string, number>;
  parameters: { tensors: number; count: number; bytes: number; byDtype: Record<string, DTypeStats> };
  externalData: { file: string; bytes: number }[];
  metadata: Record<string, string>;
  /** for pipeline folders: one report per component folder */
  components?: Record<string, InspectReport>;
}

const io = (v: Value): IOInfo => ({ name: v.name, dtype: v.dtype ?? 'unknown', shape: v.shape ?? null });

function emptyParams(): InspectReport['parameters'] {
  return { tensors: 0, count: 0, bytes: 0, byDtype: {} };
}

function addParam(p: InspectReport['parameters'], dtype: DType, shape: readonly number[], bytes: number) {
  const n = numel(shape);
  p.tensors++;
  p.count += n;
  p.bytes += bytes;
  const d = (p.byDtype[dtype] ??= { tensors: 0, count: 0, bytes: 0 });
  d.tensors++;
  d.count += n;
  d.bytes += bytes;
}

/** Describes an .onnx file, a safetensors file or index, a component folder, or a pipeline folder. */
export function inspectPath(path: string): InspectReport {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw fileError(e, path, 'no such file or folder');
  }
  if (st.isDirectory()) return inspectFolder(path);
  if (path.endsWith('.onnx')) return inspectOnnx(path);
  if (path.endsWith('.safetensors') || path.endsWith('.index.json')) return inspectCheckpoint(path);
  throw new ModelFormatError('UNKNOWN_FORMAT', 'not an .onnx, .safetensors or .safetensors.index.json file, nor a model folder', { file: path });
}

function inspectOnnx(path: string): InspectReport {
  checkRegularFile(path, 'ONNX model');
  const m = loadModel(path);
  const ops: Record<string, number> = {};
  for (const n of allNodes(m.graph)) ops[n.qualifiedType()] = (ops[n.qualifiedType()] ?? 0) + 1;
  const params = emptyParams();
  const external = new Map<string, number>();
  const visit = (g: Graph) => {
    for (const v of g.initializers.values()) {
      const t = v.const!;
      addParam(params, t.dtype, t.shape, t.byteLength);
      if (t.location) external.set(t.location.file, statSync(t.location.file).size);
    }
    for (const n of g.nodes()) for (const sg of n.subgraphs()) visit(sg);
  };
  visit(m.graph);
  return {
    path, kind: 'onnx',
    inputs: m.graph.inputs.filter((v) => !v.const).map(io), outputs: m.graph.outputs.map(io),
    ops: Object.fromEntries(Object.entries(ops).sort(([, a], [, b]) => b - a)),
    parameters: params,
    externalData: [...external].map(([file, bytes]) => ({ file: basename(file), bytes })),
    metadata: Object.fromEntries(m.metadataProps),
  };
}

function inspectCheckpoint(path: string): InspectReport {
  const ck = Checkpoint.open(path);
  const params = emptyParams();
  for (const n of ck.names) {
    const e = ck.entry(n)!;
    addParam(params, e.dtype, e.shape, e.length);
  }
  const metadata = Object.assign({}, ...ck.files.map((f) => f.metadata));
  return { path, kind: 'safetensors', inputs: [], outputs: [], ops: {}, parameters: params, externalData: [], metadata };
}

function inspectFolder(dir: string): InspectReport {
  if (existsSync(join(dir, 'model_index.json'))) {
    const components: Record<string, InspectReport> = {};
    for (const name of readdirSync(dir).sort()) {
      const sub = join(dir, name);
      if (!statSync(sub).isDirectory()) continue;
      const r = tryComponent(sub);
      if (r) components[name] = r;
    }
    const params = emptyParams();
    const ops: Record<string, number> = {};
    for (const c of Object.values(components)) {
      for (const [dt, s] of Object.entries(c.parameters.byDtype)) {
        const d = (params.byDtype[dt] ??= { tensors: 0, count: 0, bytes: 0 });
        d.tensors += s.tensors; d.count += s.count; d.bytes += s.bytes;
      }
      params.tensors += c.parameters.tensors; params.count += c.parameters.count; params.bytes += c.parameters.bytes;
      for (const [op, n] of Object.entries(c.ops)) ops[op] = (ops[op] ?? 0) + n;
    }
    const index = readJsonObject(join(dir, 'model_index.json'), 'model_index.json', 'CONFIG_JSON');
    return {
      path: dir, kind: 'pipeline', inputs: [], outputs: [], ops, parameters: params,
      externalData: Object.entries(components).flatMap(([k, c]) => c.externalData.map((e) => ({ file: `${k}/${e.file}`, bytes: e.bytes }))),
      metadata: { _class_name: String(index._class_name ?? '') }, components,
    };
  }
  const r = tryComponent(dir);
  if (!r) throw new ModelFormatError('UNKNOWN_FORMAT', 'folder has no model.onnx, safetensors weights or model_index.json', { file: dir });
  return r;
}

function tryComponent(dir: string): InspectReport | undefined {
  if (existsSync(join(dir, 'model.onnx'))) return inspectOnnx(join(dir, 'model.onnx'));
  let weights: string;
  try {
    weights = findWeights(dir);
  } catch {
    return undefined;
  }
  const r = inspectCheckpoint(weights);
  if (existsSync(join(dir, 'config.json'))) {
    try {
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      const cls = cfg._class_name ?? cfg.architectures?.[0];
      if (cls) r.metadata = { ...r.metadata, class: String(cls) };
    } catch { /* inspect describes; a bad config is the converter's error to give */ }
  }
  return r;
}

const fmtShape = (s: Dim[] | null) => (s ? `[${s.map((d) => d ?? '?').join(', ')}]` : '[?]');
const fmtBytes = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** Human-readable report. */
export function formatReport(r: InspectReport, indent = ''): string {
  const lines: string[] = [];
  const p = (s: string) => lines.push(indent + s);
  p(`${r.path} (${r.kind})`);
  if (r.inputs.length) {
    p('inputs:');
    for (const i of r.inputs) p(`  ${i.name}: ${i.dtype} ${fmtShape(i.shape)}`);
    p('outputs:');
    for (const o of r.outputs) p(`  ${o.name}: ${o.dtype} ${fmtShape(o.shape)}`);
  }
  const ops = Object.entries(r.ops);
  if (ops.length) p(`ops (${ops.reduce((a, [, n]) => a + n, 0)} nodes): ${ops.map(([k, n]) => `${k}×${n}`).join(', ')}`);
  p(`parameters: ${r.parameters.count.toLocaleString('en-US')} in ${r.parameters.tensors} tensors, ${fmtBytes(r.parameters.bytes)}`);
  for (const [dt, s] of Object.entries(r.parameters.byDtype)) p(`  ${dt}: ${s.count.toLocaleString('en-US')} in ${s.tensors} tensors, ${fmtBytes(s.bytes)}`);
  if (r.externalData.length) p(`external data: ${r.externalData.map((e) => `${e.file} (${fmtBytes(e.bytes)})`).join(', ')}`);
  const meta = Object.entries(r.metadata);
  if (meta.length && !r.components) p(`metadata: ${meta.map(([k, v]) => `${k}=${v.length > 60 ? `${v.slice(0, 57)}...` : v}`).join(', ')}`);
  for (const [name, c] of Object.entries(r.components ?? {})) {
    p(`component ${name}:`);
    lines.push(formatReport(c, `${indent}  `));
  }
  return lines.join('\n');
}
