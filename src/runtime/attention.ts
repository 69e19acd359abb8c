/**
 * Scaled dot-product attention on [B, S, H·D] projections → ONNX Runtime's `MultiHeadAttention`
 * (one kernel: no [B, H, S, S] score tensor written and read back between ops):
 *
 *     q ─► Reshape[0,0,H,D] ─► Transpose(0,2,1,3) ─► Mul(√s) ─┐
 *     k ─► Reshape[0,0,H,D] ─► Transpose(0,2,3,1) ─► Mul(√s) ─┴► MatMul ─► Softmax(-1) ─┐
 *     v ─► Reshape[0,0,H,D] ─► Transpose(0,2,1,3) ───────────────────────────────────────┴► MatMul ─► Transpose(0,2,1,3) ─► Reshape[0,0,H·D] ─► out
 *   ⇒
 *     q, k, v ─► MultiHeadAttention(num_heads=H, scale=s) ─► out
 *
 * Also as torch.onnx exports it (Optimum's graphs): head splits to `[batch, -1, H, D]` and scales
 * computed from shapes at run time, worked out statically (src/ir/shape-values.ts).
 *
 * A scale on either side (or both) is accepted; scores with an added bias (T5, masks) are not fused.
 */
import type { Graph, Model, Node, Value } from '../ir/graph.js';
import { noMatch, rulesPass, type Rule } from '../ir/rewrite.js';
import { deadCodeElimination } from '../ir/passes/dead-code-elimination.js';
import type { ProviderName } from './providers.js';
import { producedBy, sameInts, soleReader, substitute } from '../ir/match.js';
import { dimAt, shapeValues, type ShapeEntry } from '../ir/shape-values.js';
import { inferDtypes } from '../ir/type-inference.js';

interface Heads {
  x: Value;
  heads: number;
  headDim: number;
}

/** Whether entry `e` of a Reshape target (a constant, or computed from shapes) keeps dim 0: 0, or the batch read back from a shape. */
const keepsBatch = (e: ShapeEntry) => e === 0 || e === 'batch';

/**
 * `x` [B, S, H·D] split into heads: Reshape [0, 0, H, D] then Transpose(perm); an exporter's
 * [batch, -1, H, D] too, when x's last dim is known to be H·D (so -1 is S).
 */
function splitHeads(v: Value | null | undefined, perm: number[]): Heads | undefined {
  const t = producedBy(v, 'Transpose');
  if (!t || !sameInts(t.attrInts('perm'), perm)) return undefined;
  const r = producedBy(t.inputs[0], 'Reshape');
  const shape = shapeValues(r?.inputs[1]);
  if (!r || !shape || shape.length !== 4 || !keepsBatch(shape[0]) || !Number.isInteger(shape[2]) || !Number.isInteger(shape[3])) return undefined;
  const [heads, headDim] = [shape[2] as number, shape[3] as number];
  if (heads <= 0 || headDim <= 0) return undefined;
  if (shape[1] !== 0 && !(shape[1] === -1 && dimAt(r.inputs[0], -1) === heads * headDim)) return undefined;
  return { x: r.inputs[0]!, heads, headDim };
}

/** A side of the scores product, with its optional scalar scale (a constant, or computed from the head size). */
function scaled(v: Value | null | undefined, perm: number[]): { heads: Heads; scale: number } | undefined {
  const m = producedBy(v, 'Mul');
  if (m) {
    for (const i of [0, 1]) {
      const s = shapeValues(m.inputs[1 - i]);
      const h = s?.length === 1 && typeof s[0] === 'number' ? splitHeads(m.inputs[i], perm) : undefined;
      if (h) return { heads: h, scale: s![0] as number };
    }
  }
  const h = splitHeads(v, perm);
  return h && { heads: h, scale: 1 };
}

interface Match {
  q: Value;
  k: Value;
  v: Value;
  heads: number;
  scale: number;
  /** the final Reshape: everything the pattern reads is computed before it */
  last: Node;
}

export const attentionFusion: Rule<Match> = {
  name: 'attention-to-multi-head-attention',
  anchor: 'Softmax',
  match(softmax) {
    if (softmax.attrInt('axis', -1) !== -1 && softmax.attrInt('axis', -1) !== 3) return noMatch('softmax is not over the last axis');
    const scores = producedBy(softmax.inputs[0], 'MatMul');
    if (!scores) return noMatch('softmax input is not a MatMul (an added bias or mask is not fused)');
    const q = scaled(scores.inputs[0], [0, 2, 1, 3]);
    const k = scaled(scores.inputs[1], [0, 2, 3, 1]);
    if (!q || !k) return noMatch('q or kᵀ is not split into heads by Reshape + Transpose');
    const probs = softmax.outputs[0]!;
    if (probs.uses.size !== 1) return noMatch('the probabilities have other readers');
    const [use] = probs.uses;
    const pv = use!.node;
    if (pv.opType !== 'MatMul' || pv.domain || use!.index !== 0) return noMatch('probabilities do not feed a MatMul with v');
    const v = splitHeads(pv.inputs[1], [0, 2, 1, 3]);
    if (!v) return noMatch('v is not split into heads');
    if (q.heads.heads !== k.heads.heads || q.heads.heads !== v.heads || q.heads.headDim !== k.heads.headDim) return noMatch('q, k, v head layouts differ');
    const pvOut = pv.outputs[0]!;
    const t = soleReader(pvOut, 'Transpose');
    if (!t || !sameInts(t.attrInts('perm'), [0, 2, 1, 3])) return noMatch('the output is not merged back by Transpose(0,2,1,3)');
    const tOut = t.outputs[0]!;
    const r = soleReader(tOut, 'Reshape');
    const shape = shapeValues(r?.inputs[1]);
    const merged = shape?.length === 3 && keepsBatch(shape[0]) && (shape[2] === v.heads * v.headDim ? shape[1] === 0 || shape[1] === -1 : shape[1] === 0 && shape[2] === -1);
    if (!r || !merged) return noMatch('the merged output is not reshaped to [B, S, H·D]');
    return { q: q.heads.x, k: k.heads.x, v: v.x, heads: q.heads.heads, scale: q.scale * k.scale, last: r };
  },
  rewrite(m, softmax) {
    substitute(softmax, m.last, 'MultiHeadAttention', 'com.microsoft', [m.q, m.k, m.v], {
      num_heads: { type: 'int', value: m.heads },
      scale: { type: 'float', value: m.scale },
    });
  },
};

/** Whether any graph input or weight (subgraphs included) is float16: such graphs compute attention in float16. */
function hasFloat16(g: Graph): boolean {
  return g.inputs.some((v) => v.dtype === 'float16') || [...g.initializers.values()].some((v) => v.const?.dtype === 'float16') ||
    g.nodeList().some((n) => n.subgraphs().some(hasFloat16));
}

/**
 * The attention fusion every pipeline gets when it loads (as diffusers uses SDPA by default):
 * onnxruntime's CPU MultiHeadAttention runs float32 attention without mask, bias or past state as
 * flash attention (MlasFlashAttention, contrib_ops/cpu/bert/multihead_attention.cc), which never
 * writes the [B, H, S, S] scores: 1 GiB per tensor in a full-size SD 1.5 UNet call at 512×512
 * with guidance. CPU and float32 graphs only (the kernel's type; what was measured, see the
 * README's memory figures). Returns how many attentions were fused; idempotent, and the same
 * rule as ortCompile's.
 */
export function fuseAttention(model: Model, provider: ProviderName): number {
  if (provider !== 'cpu' || hasFloat16(model.graph)) return 0;
  // the ranks and static dims an exporter's run-time reshapes leave out (shape-values.ts reads them)
  inferDtypes(model.graph);
  const pass = rulesPass('attention-fusion', [attentionFusion]);
  pass.run(model);
  const n = pass.fired.get(attentionFusion.name) ?? 0;
  if (n) {
    deadCodeElimination.run(model);
    model.opsetImports.set('com.microsoft', 1);
  }
  return n;
}
