/** diffusers' ResnetBlock2D, Downsample2D and Upsample2D (resnet.py, downsampling.py, upsampling.py). */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { activation, conv2d, groupNorm, linear } from './layers.js';

export interface ResnetOptions {
  inC: number;
  outC: number;
  groups: number;
  /** groups of norm2 (default: `groups`) */
  groupsOut?: number;
  eps: number;
  /** the non-linearity by diffusers name (`silu`, `swish`, `mish`, `gelu`, `relu`) */
  act: string;
  /**
   * The time embedding after the non-linearity, [B, tembC]. diffusers applies the activation
   * inside every resnet, to the same tensor, so the caller computes it once.
   */
  tembAct?: Value;
  tembC?: number;
  /** the output is divided by it (diffusers `output_scale_factor`) */
  outputScale?: number;
}

/**
 * ResnetBlock2D with `time_embedding_norm: "default"`: norm1 → act → conv1 (+ time_emb_proj) →
 * norm2 → act → conv2, plus the input (through a 1×1 conv_shortcut when channels change).
 */
export function resnetBlock2D(c: Ctx, name: string, x: Value, o: ResnetOptions): Value {
  const b = c.b;
  return c.scope(name, () => {
    let h = groupNorm(c, 'norm1', x, o.groups, o.inC, o.eps);
    h = c.scope('nonlinearity', () => activation(c, o.act, h));
    h = conv2d(c, 'conv1', h, o.inC, o.outC);
    if (o.tembAct && o.tembC) {
      const t = linear(c, 'time_emb_proj', o.tembAct, o.tembC, o.outC);
      h = b.add(h, c.scope('time_emb_proj', () => b.unsqueeze(t, [2, 3])));
    }
    h = groupNorm(c, 'norm2', h, o.groupsOut ?? o.groups, o.outC, o.eps);
    h = c.scope('nonlinearity', () => activation(c, o.act, h));
    h = conv2d(c, 'conv2', h, o.outC, o.outC);
    const shortcut = o.inC !== o.outC ? conv2d(c, 'conv_shortcut', x, o.inC, o.outC, { kernel: 1, padding: 0 }) : x;
    let y = b.add(shortcut, h);
    if (o.outputScale !== undefined && o.outputScale !== 1) y = b.div(y, b.constF32(o.outputScale));
    return y;
  });
}

/**
 * Downsample2D with a conv (stride 2). `padding` 0 is the VAE encoder's: diffusers pads right
 * and bottom by one first, which is the Conv's own asymmetric padding here.
 */
export function downsample2D(c: Ctx, name: string, x: Value, channels: number, outChannels: number, padding: number): Value {
  return c.scope(name, () => {
    if (padding !== 0) return conv2d(c, 'conv', x, channels, outChannels, { kernel: 3, stride: 2, padding });
    return c.scope('conv', () => {
      const w = c.param('weight', [outChannels, channels, 3, 3]);
      const bias = c.param('bias', [outChannels]);
      return c.b.op('Conv', [x, w, bias], { kernel_shape: [3, 3], pads: [0, 0, 1, 1], strides: [2, 2], dilations: [1, 1], group: 1 });
    });
  });
}

/**
 * Upsample2D with a conv: nearest ×2 (or nearest to the spatial size of `sizeLike`, as the UNet
 * does for its skip connections when a side is not a multiple of the total downsampling), then
 * a 3×3 conv. Nearest is exported as PyTorch does: asymmetric coordinates, floor.
 */
export function upsample2D(c: Ctx, name: string, x: Value, channels: number, outChannels: number, sizeLike?: Value): Value {
  const b = c.b;
  return c.scope(name, () => {
    const attrs = { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' };
    let up: Value;
    if (sizeLike) {
      const sizes = b.concat([b.shape(x, 0, 2), b.shape(sizeLike, 2, 4)], 0);
      up = b.op('Resize', [x, null, null, sizes], attrs);
    } else {
      up = b.op('Resize', [x, null, b.constF32([1, 1, 2, 2])], attrs);
    }
    return conv2d(c, 'conv', up, channels, outChannels, { kernel: 3, padding: 1 });
  });
}
