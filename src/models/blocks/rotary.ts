/**
 * Flux's rotary position embedding (diffusers EmbedND / FluxPosEmbed): every id axis i rotates
 * its own `axes_dim[i]` channels of each head with frequencies θ^(−2j/axes_dim[i]); the rotation
 * acts on interleaved pairs (x[2j], x[2j+1]), as `apply_rotary_emb(use_real=True,
 * use_real_unbind_dim=-1)` does.
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';

/** cos/sin per position and channel, repeat-interleaved over pairs: [S, 1, headDim] (broadcast over heads). */
export interface Rotary {
  cos: Value;
  sin: Value;
}

/** Per-channel frequencies of the concatenated axes, each repeated for its pair (length Σ axesDim). */
export function rotaryFrequencies(axesDim: readonly number[], theta = 10000): { axis: number[]; omega: number[] } {
  const axis: number[] = [];
  const omega: number[] = [];
  axesDim.forEach((d, i) => {
    for (let j = 0; j < d / 2; j++) {
      const w = 1 / theta ** ((2 * j) / d);
      axis.push(i, i);
      omega.push(w, w);
    }
  });
  return { axis, omega };
}

/** EmbedND on position ids [S, n_axes] (float32). */
export function rotaryEmbedding(c: Ctx, name: string, ids: Value, axesDim: readonly number[], theta = 10000): Rotary {
  const b = c.b;
  return c.scope(name, () => {
    const { axis, omega } = rotaryFrequencies(axesDim, theta);
    // elementwise, not MatMul: GPU MatMul may run in TF32, which would ruin the angles
    const pos = b.op('Gather', [ids, b.constI64(axis)], { axis: 1 });
    const angles = b.unsqueeze(b.mul(pos, b.constF32(omega, [1, omega.length])), [1]);
    return { cos: b.op('Cos', [angles]), sin: b.op('Sin', [angles]) };
  });
}

/** Rotates x [B, S, H, D] by `rot` (S of x must equal S of the ids). */
export function applyRotary(c: Ctx, x: Value, rot: Rotary): Value {
  const b = c.b;
  const pairs = b.op('Reshape', [x, b.constI64([0, 0, 0, -1, 2])]);
  const [x0, x1] = b.split(pairs, [1, 1], -1) as [Value, Value];
  // (x0, x1) -> (−x1, x0): the real form of multiplying by i
  const rotated = b.op('Reshape', [b.concat([b.op('Neg', [x1]), x0], -1), b.constI64([0, 0, 0, -1])]);
  return b.add(b.mul(x, rot.cos), b.mul(rotated, rot.sin));
}
