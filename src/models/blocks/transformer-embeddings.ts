/** Embeddings of the DiT-style transformers (diffusers embeddings.py): conditioning and patches. */
import type { Value } from '../../ir/graph.js';
import { InMemoryTensor } from '../../core/tensor.js';
import type { Ctx } from './context.js';
import { timestepEmbedding, timestepProjection } from './embeddings.js';
import { conv2d } from './layers.js';

/** diffusers Timesteps(256, flip_sin_to_cos=True, shift 0) -> TimestepEmbedding, named `<name>`. */
function embedTime(c: Ctx, name: string, t: Value, dim: number): Value {
  const proj = c.scope('time_proj', () => timestepProjection(c, t, 256, true, 0));
  return timestepEmbedding(c, name, proj, 256, dim, 'silu');
}

/** PixArtAlphaTextProjection with SiLU: linear_1 -> act_1 -> linear_2. */
function textProjection(c: Ctx, pooled: Value, pooledDim: number, dim: number): Value {
  return timestepEmbedding(c, 'text_embedder', pooled, pooledDim, dim, 'silu');
}

/** CombinedTimestepTextProjEmbeddings: timestep_embedder(time_proj(t)) + text_embedder(pooled). */
export function combinedTimestepTextProjEmbeddings(c: Ctx, name: string, timestep: Value, pooled: Value, dim: number, pooledDim: number): Value {
  return c.scope(name, () => {
    const t = embedTime(c, 'timestep_embedder', timestep, dim);
    return c.b.add(t, textProjection(c, pooled, pooledDim, dim));
  });
}

/** CombinedTimestepGuidanceTextProjEmbeddings: adds guidance_embedder(time_proj(guidance)). */
export function combinedTimestepGuidanceTextProjEmbeddings(c: Ctx, name: string, timestep: Value, guidance: Value, pooled: Value, dim: number, pooledDim: number): Value {
  return c.scope(name, () => {
    const t = embedTime(c, 'timestep_embedder', timestep, dim);
    const g = embedTime(c, 'guidance_embedder', guidance, dim);
    return c.b.add(c.b.add(t, g), textProjection(c, pooled, pooledDim, dim));
  });
}

/**
 * diffusers get_2d_sincos_pos_embed(embedDim, gridSize, base_size, interpolation_scale) as
 * float32 [gridSize², embedDim]: grid coordinates in float32, sin/cos in float64 as NumPy does.
 * The first half of the channels encodes the column, the second half the row.
 */
export function sincos2dPosEmbed(embedDim: number, gridSize: number, baseSize: number, interpolationScale = 1): Float32Array {
  const f = Math.fround;
  const coord = Array.from({ length: gridSize }, (_, i) => f(f(i / f(gridSize / baseSize)) / f(interpolationScale)));
  const quarter = embedDim / 4;
  const omega = Array.from({ length: quarter }, (_, k) => 1 / 10000 ** (k / quarter));
  const out = new Float32Array(gridSize * gridSize * embedDim);
  const put = (o: number, pos: number) => {
    for (let k = 0; k < quarter; k++) {
      out[o + k] = Math.sin(pos * omega[k]!);
      out[o + quarter + k] = Math.cos(pos * omega[k]!);
    }
  };
  for (let i = 0; i < gridSize; i++) {
    for (let j = 0; j < gridSize; j++) {
      const o = (i * gridSize + j) * embedDim;
      put(o, coord[j]!);
      put(o + embedDim / 2, coord[i]!);
    }
  }
  return out;
}

export interface PatchEmbedOptions {
  patchSize: number;
  inChannels: number;
  embedDim: number;
  /** side of the stored pos-embed grid; the centre crop matching the input is added */
  posEmbedMaxSize: number;
  /** sample_size // patch_size, for computing the grid when the checkpoint lacks it */
  baseSize: number;
  interpolationScale?: number;
}

/**
 * SD3 PatchEmbed: Conv2d(k=p, s=p) -> [B, h·w, D], plus the centre crop of the
 * pos_embed_max_size² sincos grid for the input's h×w (computed in the graph from its shape).
 */
export function patchEmbed(c: Ctx, name: string, x: Value, o: PatchEmbedOptions): Value {
  const b = c.b;
  const { patchSize: p, embedDim: d, posEmbedMaxSize: m } = o;
  return c.scope(name, () => {
    const proj = conv2d(c, 'proj', x, o.inChannels, d, { kernel: p, stride: p, padding: 0 });
    const tokens = b.transpose(b.op('Reshape', [proj, b.constI64([0, d, -1])]), [0, 2, 1]);
    // diffusers saves the grid with the weights when pos_embed_max_size is set; older or
    // stripped checkpoints may lack it, and it is a pure function of the config
    const table = c.hasParam('pos_embed')
      ? c.param('pos_embed', [1, m * m, d])
      : b.weight('pos_embed', new InMemoryTensor('float32', [1, m * m, d], sincos2dPosEmbed(d, m, o.baseSize, o.interpolationScale ?? 1)));
    const hw = b.div(b.shape(x, 2, 4), b.constI64(p));
    const start = b.div(b.sub(b.constI64(m), hw), b.constI64(2));
    const grid = b.op('Reshape', [table, b.constI64([m, m, d])]);
    const crop = b.op('Slice', [grid, start, b.add(start, hw), b.constI64([0, 1])]);
    return b.add(tokens, b.op('Reshape', [crop, b.constI64([1, -1, d])]));
  });
}
