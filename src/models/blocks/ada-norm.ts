/**
 * diffusers' adaptive LayerNorms (normalization.py): a Linear on silu(emb) yields per-sample
 * shift/scale/gate vectors that modulate a LayerNorm without affine parameters.
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { layerNorm, linear, silu } from './layers.js';

/** `linear(silu(emb))` [B, n·dim] split into n chunks of [B, 1, dim] (already broadcastable over S). */
function modulation(c: Ctx, emb: Value, condDim: number, dim: number, n: number): Value[] {
  const b = c.b;
  const act = c.scope('silu', () => silu(c, emb));
  const params = b.unsqueeze(linear(c, 'linear', act, condDim, n * dim), [1]);
  return b.split(params, Array(n).fill(dim), -1);
}

/** norm(x)·(1 + scale) + shift */
function modulate(c: Ctx, normed: Value, shift: Value, scale: Value): Value {
  const b = c.b;
  return b.add(b.mul(normed, b.add(scale, b.constF32(1))), shift);
}

export interface AdaNormZeroOut {
  x: Value;
  gateMsa: Value;
  shiftMlp: Value;
  scaleMlp: Value;
  gateMlp: Value;
}

/** AdaLayerNormZero (6 chunks: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp), eps 1e-6. */
export function adaLayerNormZero(c: Ctx, name: string, x: Value, emb: Value, dim: number): AdaNormZeroOut {
  return c.scope(name, () => {
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = modulation(c, emb, dim, dim, 6) as [Value, Value, Value, Value, Value, Value];
    const normed = layerNorm(c, 'norm', x, dim, 1e-6, false);
    return { x: modulate(c, normed, shiftMsa, scaleMsa), gateMsa, shiftMlp, scaleMlp, gateMlp };
  });
}

/**
 * SD35AdaLayerNormZeroX (9 chunks): AdaLayerNormZero plus a second modulation of the same
 * normalized input for the SD3.5 dual-attention branch.
 */
export function sd35AdaLayerNormZeroX(c: Ctx, name: string, x: Value, emb: Value, dim: number): AdaNormZeroOut & { x2: Value; gateMsa2: Value } {
  return c.scope(name, () => {
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp, shiftMsa2, scaleMsa2, gateMsa2] = modulation(c, emb, dim, dim, 9) as Value[] as [Value, Value, Value, Value, Value, Value, Value, Value, Value];
    const normed = layerNorm(c, 'norm', x, dim, 1e-6, false);
    return {
      x: modulate(c, normed, shiftMsa, scaleMsa),
      gateMsa, shiftMlp, scaleMlp, gateMlp,
      x2: modulate(c, normed, shiftMsa2, scaleMsa2),
      gateMsa2,
    };
  });
}

/** AdaLayerNormZeroSingle (3 chunks: shift, scale, gate), eps 1e-6. */
export function adaLayerNormZeroSingle(c: Ctx, name: string, x: Value, emb: Value, dim: number): { x: Value; gate: Value } {
  return c.scope(name, () => {
    const [shift, scale, gate] = modulation(c, emb, dim, dim, 3) as [Value, Value, Value];
    const normed = layerNorm(c, 'norm', x, dim, 1e-6, false);
    return { x: modulate(c, normed, shift, scale), gate };
  });
}

/**
 * AdaLayerNormContinuous with a LayerNorm: note the chunk order is (scale, shift), unlike the
 * Zero variants. `affine` is the LayerNorm's elementwise_affine (False in Flux and SD3).
 */
export function adaLayerNormContinuous(c: Ctx, name: string, x: Value, cond: Value, dim: number, condDim: number, eps: number, affine = false): Value {
  return c.scope(name, () => {
    const [scale, shift] = modulation(c, cond, condDim, dim, 2) as [Value, Value];
    const normed = layerNorm(c, 'norm', x, dim, eps, affine);
    return modulate(c, normed, shift, scale);
  });
}
