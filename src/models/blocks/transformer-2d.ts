/**
 * diffusers' Transformer2DModel over continuous NCHW input (the UNet's `attentions.i`), with
 * BasicTransformerBlock (layer_norm type) and the Attention module they use.
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { feedForward } from './feed-forward.js';
import { attention, conv2d, groupNorm, layerNorm, linear } from './layers.js';

/**
 * diffusers Attention (AttnProcessor2_0) on [B, S, queryDim]: to_q/to_k/to_v → SDPA → to_out.0.
 * Keys and values come from `context` (cross-attention) or from `x` (self-attention).
 */
export function attentionBlock(
  c: Ctx,
  name: string,
  x: Value,
  o: { queryDim: number; heads: number; headDim: number; context?: Value; contextDim?: number; bias?: boolean; outBias?: boolean },
): Value {
  const inner = o.heads * o.headDim;
  const kvIn = o.context ?? x;
  const kvDim = o.context ? (o.contextDim ?? o.queryDim) : o.queryDim;
  return c.scope(name, () => {
    const q = linear(c, 'to_q', x, o.queryDim, inner, o.bias ?? false);
    const k = linear(c, 'to_k', kvIn, kvDim, inner, o.bias ?? false);
    const v = linear(c, 'to_v', kvIn, kvDim, inner, o.bias ?? false);
    const h = attention(c, q, k, v, o.heads, o.headDim);
    return linear(c, 'to_out.0', h, inner, o.queryDim, o.outBias ?? true);
  });
}

export interface BasicTransformerBlockOptions {
  dim: number;
  heads: number;
  headDim: number;
  crossDim: number;
  normEps?: number;
}

/** BasicTransformerBlock: x + attn1(norm1 x); x + attn2(norm2 x, context); x + ff(norm3 x). */
export function basicTransformerBlock(c: Ctx, name: string, x: Value, context: Value, o: BasicTransformerBlockOptions): Value {
  const b = c.b;
  const eps = o.normEps ?? 1e-5;
  return c.scope(name, () => {
    let h = x;
    const n1 = layerNorm(c, 'norm1', h, o.dim, eps);
    h = b.add(attentionBlock(c, 'attn1', n1, { queryDim: o.dim, heads: o.heads, headDim: o.headDim }), h);
    const n2 = layerNorm(c, 'norm2', h, o.dim, eps);
    h = b.add(attentionBlock(c, 'attn2', n2, { queryDim: o.dim, heads: o.heads, headDim: o.headDim, context, contextDim: o.crossDim }), h);
    const n3 = layerNorm(c, 'norm3', h, o.dim, eps);
    h = b.add(feedForward(c, 'ff', n3, o.dim, { activation: 'geglu' }), h);
    return h;
  });
}

export interface Transformer2DOptions {
  /** in_channels = heads · headDim (the UNet always builds it so) */
  channels: number;
  heads: number;
  headDim: number;
  /** number of BasicTransformerBlocks */
  layers: number;
  crossDim: number;
  groups: number;
  /** proj_in/proj_out as Linear (SD 2.x, SDXL) instead of 1×1 Conv (SD 1.x) */
  linearProjection: boolean;
}

/**
 * Transformer2DModel: GroupNorm (eps 1e-6) → proj_in → [B, H·W, C] → blocks → proj_out →
 * back to NCHW, plus the input.
 */
export function transformer2D(c: Ctx, name: string, x: Value, context: Value, o: Transformer2DOptions): Value {
  const b = c.b;
  const C = o.channels;
  if (o.heads * o.headDim !== C) throw new Error(`Transformer2DModel: ${o.heads} heads × ${o.headDim} != ${C} channels`);
  return c.scope(name, () => {
    const nchwShape = b.shape(x);
    const toTokens = (t: Value) => b.transpose(b.op('Reshape', [t, b.constI64([0, C, -1])]), [0, 2, 1]);
    const toNchw = (t: Value) => b.op('Reshape', [b.transpose(t, [0, 2, 1]), nchwShape]);
    let h = groupNorm(c, 'norm', x, o.groups, C, 1e-6);
    if (o.linearProjection) h = linear(c, 'proj_in', toTokens(h), C, C);
    else h = toTokens(conv2d(c, 'proj_in', h, C, C, { kernel: 1, padding: 0 }));
    for (let i = 0; i < o.layers; i++) {
      h = basicTransformerBlock(c, `transformer_blocks.${i}`, h, context, { dim: C, heads: o.heads, headDim: o.headDim, crossDim: o.crossDim });
    }
    if (o.linearProjection) h = toNchw(linear(c, 'proj_out', h, C, C));
    else h = conv2d(c, 'proj_out', toNchw(h), C, C, { kernel: 1, padding: 0 });
    return b.add(h, x);
  });
}
