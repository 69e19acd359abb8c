/** Timestep embeddings shared by the UNet and the transformers (diffusers' embeddings.py). */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { activation, linear } from './layers.js';

/**
 * Sinusoidal projection of timesteps [B] -> [B, dim] (diffusers `get_timestep_embedding`):
 * freqs = exp(-ln(maxPeriod)·i / (dim/2 − shift)), emb = scale·t·freqs, [sin, cos] (or [cos, sin]).
 */
export function timestepProjection(c: Ctx, t: Value, dim: number, flipSinToCos: boolean, downscaleFreqShift: number, scale = 1, maxPeriod = 10000): Value {
  const b = c.b;
  const half = Math.floor(dim / 2);
  // each step rounded to float32, as torch computes it
  const f = Math.fround;
  const freqs = Array.from({ length: half }, (_, i) => f(Math.exp(f(f(f(-Math.log(maxPeriod)) * i) / f(half - downscaleFreqShift)))));
  let arg = b.mul(b.unsqueeze(t, [1]), b.constF32(freqs, [1, half]));
  if (scale !== 1) arg = b.mul(arg, b.constF32(scale));
  const sin = b.op('Sin', [arg]);
  const cos = b.op('Cos', [arg]);
  let emb = b.concat(flipSinToCos ? [cos, sin] : [sin, cos], -1);
  if (dim % 2 === 1) emb = b.op('Pad', [emb, b.constI64([0, 0, 0, 1])]);
  return emb;
}

/** diffusers TimestepEmbedding: linear_1 → act → linear_2 (with optional cond_proj added first). */
export function timestepEmbedding(c: Ctx, name: string, x: Value, inDim: number, outDim: number, act = 'silu', opts: { cond?: Value; condDim?: number; postAct?: string; outDimOverride?: number } = {}): Value {
  return c.scope(name, () => {
    let h = x;
    if (opts.cond && opts.condDim) h = c.b.add(h, linear(c, 'cond_proj', opts.cond, opts.condDim, inDim, false));
    h = linear(c, 'linear_1', h, inDim, outDim);
    h = activation(c, act, h);
    h = linear(c, 'linear_2', h, outDim, opts.outDimOverride ?? outDim);
    if (opts.postAct) h = activation(c, opts.postAct, h);
    return h;
  });
}
