/**
 * diffusers' unet_2d_blocks.py: the UNet's down/mid/up blocks and the VAE's encoder/decoder
 * blocks, built from ResnetBlock2D, Transformer2DModel and the samplers.
 */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { attention, groupNorm, linear } from './layers.js';
import { downsample2D, resnetBlock2D, upsample2D } from './resnet.js';
import { transformer2D } from './transformer-2d.js';

/** What every resnet of a block shares. */
export interface ResnetCommon {
  groups: number;
  eps: number;
  act: string;
  /** activated time embedding [B, tembC]; absent in the VAE */
  tembAct?: Value;
  tembC?: number;
}

/** The Transformer2DModel settings of a cross-attention block. */
export interface CrossAttnCommon {
  context: Value;
  crossDim: number;
  heads: number;
  /** transformer layers of the i-th attention (diffusers allows one count per resnet) */
  transformerLayers: number[];
  linearProjection: boolean;
}

export interface DownBlockOptions extends ResnetCommon {
  inC: number;
  outC: number;
  layers: number;
  addDownsample: boolean;
  downsamplePadding: number;
}

export interface DownBlockResult {
  out: Value;
  /** the block's `output_states`, in order (what the up path pops from the end) */
  skips: Value[];
}

function resnetOpts(r: ResnetCommon, inC: number, outC: number, outputScale = 1) {
  return { inC, outC, groups: r.groups, eps: r.eps, act: r.act, tembAct: r.tembAct, tembC: r.tembC, outputScale };
}

function crossAttn(c: Ctx, name: string, x: Value, channels: number, groups: number, a: CrossAttnCommon, i: number): Value {
  return transformer2D(c, name, x, a.context, {
    channels,
    heads: a.heads,
    headDim: channels / a.heads,
    layers: a.transformerLayers[i] ?? a.transformerLayers[0]!,
    crossDim: a.crossDim,
    groups,
    linearProjection: a.linearProjection,
  });
}

/** DownBlock2D (`attn` absent) or CrossAttnDownBlock2D: resnets (+ attentions), then a downsampler. */
export function downBlock2D(c: Ctx, name: string, x: Value, o: DownBlockOptions, attn?: CrossAttnCommon): DownBlockResult {
  return c.scope(name, () => {
    const skips: Value[] = [];
    let h = x;
    for (let i = 0; i < o.layers; i++) {
      h = resnetBlock2D(c, `resnets.${i}`, h, resnetOpts(o, i === 0 ? o.inC : o.outC, o.outC));
      if (attn) h = crossAttn(c, `attentions.${i}`, h, o.outC, o.groups, attn, i);
      skips.push(h);
    }
    if (o.addDownsample) {
      h = downsample2D(c, 'downsamplers.0', h, o.outC, o.outC, o.downsamplePadding);
      skips.push(h);
    }
    return { out: h, skips };
  });
}

export function crossAttnDownBlock2D(c: Ctx, name: string, x: Value, o: DownBlockOptions, attn: CrossAttnCommon): DownBlockResult {
  return downBlock2D(c, name, x, o, attn);
}

export interface MidBlockOptions extends ResnetCommon {
  channels: number;
  outputScale?: number;
}

/** UNetMidBlock2DCrossAttn: resnet, then (attention, resnet) once. */
export function unetMidBlock2DCrossAttn(c: Ctx, name: string, x: Value, o: MidBlockOptions, attn: CrossAttnCommon): Value {
  return c.scope(name, () => {
    let h = resnetBlock2D(c, 'resnets.0', x, resnetOpts(o, o.channels, o.channels, o.outputScale));
    h = crossAttn(c, 'attentions.0', h, o.channels, o.groups, attn, 0);
    return resnetBlock2D(c, 'resnets.1', h, resnetOpts(o, o.channels, o.channels, o.outputScale));
  });
}

export interface UpBlockOptions extends ResnetCommon {
  /** channels of the skip that feeds the last resnet (diffusers `in_channels`) */
  inC: number;
  prevC: number;
  outC: number;
  layers: number;
  addUpsample: boolean;
  /** upsample to this tensor's spatial size (the next skip), as diffusers' `upsample_size` */
  upsampleTo?: Value;
}

/**
 * UpBlock2D (`attn` absent) or CrossAttnUpBlock2D: each resnet takes the running tensor
 * concatenated with the last remaining skip (popped from `skips`), then an upsampler.
 */
export function upBlock2D(c: Ctx, name: string, x: Value, skips: Value[], o: UpBlockOptions, attn?: CrossAttnCommon): Value {
  return c.scope(name, () => {
    let h = x;
    for (let i = 0; i < o.layers; i++) {
      const skip = skips.pop();
      if (!skip) throw new Error(`${name}: no skip connection left for resnets.${i}`);
      const skipC = i === o.layers - 1 ? o.inC : o.outC;
      const inC = i === 0 ? o.prevC : o.outC;
      h = c.b.concat([h, skip], 1);
      h = resnetBlock2D(c, `resnets.${i}`, h, resnetOpts(o, inC + skipC, o.outC));
      if (attn) h = crossAttn(c, `attentions.${i}`, h, o.outC, o.groups, attn, i);
    }
    if (o.addUpsample) h = upsample2D(c, 'upsamplers.0', h, o.outC, o.outC, o.upsampleTo);
    return h;
  });
}

export function crossAttnUpBlock2D(c: Ctx, name: string, x: Value, skips: Value[], o: UpBlockOptions, attn: CrossAttnCommon): Value {
  return upBlock2D(c, name, x, skips, o, attn);
}

// ---- VAE ------------------------------------------------------------------------------------

/** DownEncoderBlock2D: resnets without time embedding, then a downsampler. */
export function downEncoderBlock2D(c: Ctx, name: string, x: Value, o: Omit<DownBlockOptions, 'tembAct' | 'tembC'>): Value {
  return downBlock2D(c, name, x, o).out;
}

/** UpDecoderBlock2D: resnets without time embedding, then an upsampler (nearest ×2). */
export function upDecoderBlock2D(c: Ctx, name: string, x: Value, o: { inC: number; outC: number; layers: number; addUpsample: boolean; groups: number; eps: number; act: string }): Value {
  return c.scope(name, () => {
    let h = x;
    for (let i = 0; i < o.layers; i++) h = resnetBlock2D(c, `resnets.${i}`, h, resnetOpts(o, i === 0 ? o.inC : o.outC, o.outC));
    if (o.addUpsample) h = upsample2D(c, 'upsamplers.0', h, o.outC, o.outC);
    return h;
  });
}

/**
 * The spatial self-attention of UNetMidBlock2D (diffusers Attention with group_norm,
 * residual_connection, biases): GroupNorm → q/k/v over the H·W tokens → to_out.0 → + input.
 * Checkpoints saved before diffusers 0.14 name the projections query/key/value/proj_attn;
 * diffusers renames them on load, we read either.
 */
export function midBlockAttention(c: Ctx, name: string, x: Value, o: { channels: number; headDim: number; groups: number; eps: number; outputScale?: number }): Value {
  const b = c.b;
  const C = o.channels;
  const heads = Math.floor(C / o.headDim);
  return c.scope(name, () => {
    const legacy = !c.hasParam('to_q.weight') && c.hasParam('query.weight');
    const [qn, kn, vn, on] = legacy ? ['query', 'key', 'value', 'proj_attn'] : ['to_q', 'to_k', 'to_v', 'to_out.0'];
    const nchwShape = b.shape(x);
    const h = groupNorm(c, 'group_norm', x, o.groups, C, o.eps);
    const tokens = b.transpose(b.op('Reshape', [h, b.constI64([0, C, -1])]), [0, 2, 1]);
    const q = linear(c, qn, tokens, C, heads * o.headDim);
    const k = linear(c, kn, tokens, C, heads * o.headDim);
    const v = linear(c, vn, tokens, C, heads * o.headDim);
    const a = attention(c, q, k, v, heads, o.headDim);
    const out = linear(c, on, a, heads * o.headDim, C);
    let y = b.add(b.op('Reshape', [b.transpose(out, [0, 2, 1]), nchwShape]), x);
    if (o.outputScale !== undefined && o.outputScale !== 1) y = b.div(y, b.constF32(o.outputScale));
    return y;
  });
}

/** UNetMidBlock2D: resnet, then (attention?, resnet) once; the VAE's attention head is all channels. */
export function unetMidBlock2D(c: Ctx, name: string, x: Value, o: MidBlockOptions & { addAttention: boolean; attentionHeadDim?: number }): Value {
  return c.scope(name, () => {
    let h = resnetBlock2D(c, 'resnets.0', x, resnetOpts(o, o.channels, o.channels, o.outputScale));
    if (o.addAttention) {
      h = midBlockAttention(c, 'attentions.0', h, { channels: o.channels, headDim: o.attentionHeadDim ?? o.channels, groups: o.groups, eps: o.eps, outputScale: o.outputScale });
    }
    return resnetBlock2D(c, 'resnets.1', h, resnetOpts(o, o.channels, o.channels, o.outputScale));
  });
}

/** UNetMidBlock2D as the UNet's `mid_block_type: "UNetMidBlock2D"` builds it: one resnet, no attention. */
export function unetMidBlock2DResnetOnly(c: Ctx, name: string, x: Value, o: MidBlockOptions): Value {
  return c.scope(name, () => resnetBlock2D(c, 'resnets.0', x, resnetOpts(o, o.channels, o.channels, o.outputScale)));
}
