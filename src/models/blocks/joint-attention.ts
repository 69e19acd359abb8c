/**
 * MMDiT attention (diffusers JointAttnProcessor2_0 / FluxAttnProcessor2_0): the sample and the
 * context stream each get their own q/k/v projections (to_* and add_*_proj) and optional per-head
 * RMSNorm (norm_q/norm_k, norm_added_q/norm_added_k), attend jointly over the concatenated
 * sequence, and are split again for their own output projections (to_out.0, to_add_out).
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { attention, linear, rmsNorm } from './layers.js';
import { applyRotary, type Rotary } from './rotary.js';

export type QkNorm = 'rms_norm' | null;

export interface AttentionOptions {
  dim: number;
  heads: number;
  headDim: number;
  /** per-head normalization of q and k (eps `eps`) */
  qkNorm?: QkNorm;
  eps?: number;
  /** rotary embedding of the whole attended sequence (Flux) */
  rope?: Rotary;
}

/** Linear projection to [B, S, H, D], with the per-head norm applied. */
function heads4(c: Ctx, proj: string, norm: string | null, x: Value, o: AttentionOptions): Value {
  const b = c.b;
  const inner = o.heads * o.headDim;
  const y = b.op('Reshape', [linear(c, proj, x, o.dim, inner), b.constI64([0, 0, o.heads, o.headDim])]);
  return norm && o.qkNorm === 'rms_norm' ? rmsNorm(c, norm, y, o.headDim, o.eps ?? 1e-6) : y;
}

/** SDPA over [B, S, H, D] q/k/v (rotary applied to q and k first) -> [B, S, H·D]. */
function sdpa(c: Ctx, q: Value, k: Value, v: Value, o: AttentionOptions): Value {
  const b = c.b;
  if (o.rope) {
    q = applyRotary(c, q, o.rope);
    k = applyRotary(c, k, o.rope);
  }
  const flat = (x: Value) => b.op('Reshape', [x, b.constI64([0, 0, o.heads * o.headDim])]);
  return attention(c, flat(q), flat(k), flat(v), o.heads, o.headDim);
}

export interface JointAttentionOptions extends AttentionOptions {
  /** Flux puts the context first in the joint sequence, SD3 puts the sample first */
  contextFirst: boolean;
  /** SD3's last block: no to_add_out, the context output is dropped */
  contextPreOnly?: boolean;
}

/** Joint attention of sample `x` [B, N, dim] and context `ctx` [B, S, dim]. */
export function jointAttention(c: Ctx, name: string, x: Value, ctx: Value, o: JointAttentionOptions): { x: Value; ctx: Value | null } {
  const b = c.b;
  return c.scope(name, () => {
    const q = heads4(c, 'to_q', 'norm_q', x, o);
    const k = heads4(c, 'to_k', 'norm_k', x, o);
    const v = heads4(c, 'to_v', null, x, o);
    const cq = heads4(c, 'add_q_proj', 'norm_added_q', ctx, o);
    const ck = heads4(c, 'add_k_proj', 'norm_added_k', ctx, o);
    const cv = heads4(c, 'add_v_proj', null, ctx, o);
    const cat = (s: Value, t: Value) => b.concat(o.contextFirst ? [t, s] : [s, t], 1);
    const out = sdpa(c, cat(q, cq), cat(k, ck), cat(v, cv), o);
    const lengths = [b.shape(x, 1, 2), b.shape(ctx, 1, 2)];
    const sizes = b.concat(o.contextFirst ? [lengths[1]!, lengths[0]!] : lengths, 0);
    const parts = b.opN('Split', [out, sizes], { axis: 1 }, { outputs: 2 });
    const [xo, co] = (o.contextFirst ? [parts[1], parts[0]] : parts) as [Value, Value];
    const inner = o.heads * o.headDim;
    return {
      x: linear(c, 'to_out.0', xo, inner, o.dim),
      ctx: o.contextPreOnly ? null : linear(c, 'to_add_out', co, inner, o.dim),
    };
  });
}

/**
 * Self-attention with the same projections (Flux single blocks: `outProj` false, as their
 * Attention is pre_only; SD3.5's attn2: `outProj` true).
 */
export function selfAttention(c: Ctx, name: string, x: Value, o: AttentionOptions & { outProj: boolean }): Value {
  return c.scope(name, () => {
    const q = heads4(c, 'to_q', 'norm_q', x, o);
    const k = heads4(c, 'to_k', 'norm_k', x, o);
    const v = heads4(c, 'to_v', null, x, o);
    const out = sdpa(c, q, k, v, o);
    return o.outProj ? linear(c, 'to_out.0', out, o.heads * o.headDim, o.dim) : out;
  });
}
