/**
 * qkv: the q, k and v projections of an attention that read the same input become one MatMul
 * (+ one bias Add) and a Split — one larger GEMM instead of three (k and v alone for
 * cross-attention, whose q reads another input):
 *
 *     x ─► MatMul(Wq) ─► Add(bq) ─► q           x ─► MatMul([Wq|Wk|Wv]) ─► Add([bq|bk|bv]) ─► Split ─► q
 *     x ─► MatMul(Wk) ─► Add(bk) ─► k     ⇒                                                     ├──► k
 *     x ─► MatMul(Wv) ─► Add(bv) ─► v                                                           └──► v
 *
 * The fused nodes keep the module paths they came from (metadata), so quantizer globs written
 * for `to_q` still reach them.
 */
import { z } from 'zod';
import { InMemoryTensor, type Tensor } from '../../core/tensor.js';
import { toFloat32 } from '../../core/float.js';
import { Node, Value, type Graph, type Model } from '../../ir/graph.js';
import { FUSED_FROM_KEY, modulePath, setModulePath } from '../../ir/modules.js';
import { defineAlgorithm, supported } from '../algorithm.js';
import { biasAdd, constWeight2D, dropUnused } from '../quantizers/linear.js';

/** Projection leaf names by family, in q, k, v order; the fused module takes the family's name. */
const FAMILIES: readonly { members: readonly string[]; fused: string }[] = [
  { members: ['to_q', 'to_k', 'to_v'], fused: 'to_qkv' },
  { members: ['add_q_proj', 'add_k_proj', 'add_v_proj'], fused: 'add_qkv_proj' },
  { members: ['q_proj', 'k_proj', 'v_proj'], fused: 'qkv_proj' },
  { members: ['q', 'k', 'v'], fused: 'qkv' },
];

interface Member {
  node: Node;
  weight: Value;
  add?: Node;
  bias?: Value;
  order: number;
}

interface Group {
  parent: string;
  fusedName: string;
  members: Member[];
}

/** The q/k/v groups of the main graph that can fuse: projections of one attention reading one input. */
export function qkvGroups(model: Model): Group[] {
  const g = model.graph;
  const groups = new Map<string, Group>();
  const inputIds = new Map<Value, number>();
  for (const node of g.nodes()) {
    if (node.opType !== 'MatMul' || node.domain) continue;
    const path = modulePath(node);
    const dot = path.lastIndexOf('.');
    const leaf = path.slice(dot + 1);
    const fam = FAMILIES.findIndex((f) => f.members.includes(leaf));
    const weight = constWeight2D(node);
    if (fam < 0 || !weight) continue;
    const a = node.inputs[0]!;
    if (!inputIds.has(a)) inputIds.set(a, inputIds.size);
    // one group per attention module, projection family and input value
    const key = `${path.slice(0, dot)} ${fam} ${inputIds.get(a)}`;
    const b = biasAdd(node, weight.const!.shape[1]!);
    const group = groups.get(key) ?? { parent: path.slice(0, dot), fusedName: FAMILIES[fam]!.fused, members: [] };
    group.members.push({ node, weight, add: b?.add, bias: b?.bias, order: FAMILIES[fam]!.members.indexOf(leaf) });
    groups.set(key, group);
  }
  const out: Group[] = [];
  for (const group of groups.values()) {
    const members = group.members;
    if (members.length < 2) continue;
    const K = members[0]!.weight.const!.shape[0];
    if (members.some((m) => m.weight.const!.shape[0] !== K)) continue;
    // all with a bias or none: a partial bias would need zeros for the others
    if (members.some((m) => !m.bias) && members.some((m) => m.bias)) continue;
    if (new Set(members.map((m) => m.order)).size !== members.length) continue;
    members.sort((a, b) => a.order - b.order);
    out.push(group);
  }
  return out;
}

/** Fuses every q/k/v group of the main graph; returns the number of fused groups. */
export function fuseQkv(model: Model): number {
  const groups = qkvGroups(model);
  for (const { parent, fusedName, members } of groups) fuseGroup(model.graph, parent, fusedName, members);
  return groups.length;
}

function fuseGroup(g: Graph, parent: string, fusedName: string, members: Member[]): void {
  const prefix = parent ? `${parent}.${fusedName}` : fusedName;
  const scope = `/${prefix.split('.').join('/')}`.replace(/\/(\d+)(?=\/|$)/g, '.$1');
  const sizes = members.map((m) => m.weight.const!.shape[1]!);
  const first = members[0]!.node;
  const a = first.inputs[0]!;
  const from = JSON.stringify(members.map((m) => modulePath(m.node)));
  const mk = (op: string, inputs: (Value | null)[], outputs: Value[], attrs: Record<string, number | number[]> = {}) => {
    const n = new Node(op, `${scope}/${op}`);
    n.inputs.push(...inputs);
    n.outputs.push(...outputs);
    for (const [k, v] of Object.entries(attrs)) n.attributes.set(k, Array.isArray(v) ? { type: 'ints', value: v } : { type: 'int', value: v });
    setModulePath(n, prefix);
    n.metadata.set(FUSED_FROM_KEY, from);
    return n;
  };
  const W = g.addInitializer(`${prefix}.weight`, concatColumns(members.map((m) => m.weight.const!)));
  const dtype = members[0]!.node.outputs[0]!.dtype;
  const mm = new Value(`${scope}/MatMul_output_0`, dtype);
  const nodes = [mk('MatMul', [a, W], [mm])];
  let y = mm;
  if (members[0]!.bias) {
    const B = g.addInitializer(`${prefix}.bias`, concat1D(members.map((m) => m.bias!.const!)));
    y = new Value(`${scope}/Add_output_0`, dtype);
    nodes.push(mk('Add', [mm, B], [y]));
  }
  const sizesV = g.addInitializer(`${prefix}.split_sizes`, new InMemoryTensor('int64', [sizes.length], BigInt64Array.from(sizes.map(BigInt))));
  // Split writes straight into the values the readers already use, so no use needs redirecting
  nodes.push(mk('Split', [y, sizesV], members.map((m) => (m.add ?? m.node).outputs[0]!), { axis: -1 }));
  // before the earliest projection: every reader of a projection comes after it
  const earliest = [...g.nodes()].find((n) => members.some((m) => m.node === n))!;
  for (const n of nodes) g.insert(n, earliest);
  const olds = members.flatMap((m) => (m.add ? [m.node, m.add] : [m.node]));
  for (const n of olds) g.remove(n, true);
  dropUnused(g, olds.flatMap((n) => n.inputs));
}

/** [K, N1] | [K, N2] | … → [K, ΣN] (float32). */
function concatColumns(ws: readonly Tensor[]): Tensor {
  const K = ws[0]!.shape[0]!;
  const total = ws.reduce((s, w) => s + w.shape[1]!, 0);
  const out = new Float32Array(K * total);
  let col = 0;
  for (const w of ws) {
    const N = w.shape[1]!;
    const x = toFloat32(w);
    for (let k = 0; k < K; k++) out.set(x.subarray(k * N, (k + 1) * N), k * total + col);
    col += N;
  }
  return new InMemoryTensor('float32', [K, total], out);
}

function concat1D(bs: readonly Tensor[]): Tensor {
  const parts = bs.map(toFloat32);
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return new InMemoryTensor('float32', [out.length], out);
}

export const qkv = defineAlgorithm({
  name: 'qkv',
  kind: 'factorizer',
  description: 'fuses the q, k and v projections that share an input into one MatMul and a Split',
  schema: z.object({}),
  supports: () => supported,
  apply() {
    return {
      transform(component, model) {
        if (component.role === 'denoiser' || component.role === 'text_encoder') fuseQkv(model);
        return model;
      },
      touches: (component, model) =>
        component.role === 'denoiser' || component.role === 'text_encoder' ? qkvGroups(model).flatMap((g) => g.members.map((m) => modulePath(m.node))) : [],
    };
  },
});
