/**
 * Scaling a config down (or up) while keeping its layout: the same block types, levels, norms and
 * options, narrower (`widthMult`) and/or shallower (`depth`). What each option does, per class:
 *
 * `widthMult` x (> 0):
 * - UNet2DConditionModel: every `block_out_channels[i]` × x, rounded to the nearest multiple of
 *   lcm(norm_num_groups, head count of level i) (head count only on levels with attention; at
 *   least one multiple). Head counts (`attention_head_dim`), groups and `addition_time_embed_dim`
 *   are kept; `time_embedding_dim`, when set, × x. The conditioning widths follow the scaled text
 *   encoders of the preset: `cross_attention_dim` = sum of their hidden sizes (SDXL: CLIP-L +
 *   CLIP-G), `projection_class_embeddings_input_dim` = the last encoder's projection_dim + the
 *   time-id part (SDXL: 6 × 256).
 * - AutoencoderKL: every `block_out_channels[i]` × x, rounded to a multiple of norm_num_groups.
 * - FluxTransformer2DModel: `num_attention_heads` × x (rounded, ≥ 1), `attention_head_dim` (and
 *   the rope axes) kept; `joint_attention_dim` = the scaled T5's d_model, `pooled_projection_dim`
 *   = the scaled CLIP's hidden_size.
 * - SD3Transformer2DModel: `num_attention_heads` × x, `attention_head_dim` kept,
 *   `caption_projection_dim` = heads × head dim; `joint_attention_dim` = the scaled T5's d_model,
 *   `pooled_projection_dim` = CLIP-L + CLIP-G projection_dim.
 * - CLIPTextModel(WithProjection): `num_attention_heads` × x, head size kept, so hidden_size =
 *   heads × 64 for the presets; `intermediate_size` and `projection_dim` scale with hidden_size.
 * - T5EncoderModel: `num_heads` × x, `d_kv` kept; `d_model` and `d_ff` scale with the head count.
 *   In an SD3 layout d_model is raised, if needed, to CLIP-L + CLIP-G hidden (SD3 pads the CLIP
 *   embeddings to the T5 width).
 * Vocabularies, position tables, latent/in/out channels, patch sizes are never scaled.
 * A config given as a file has no known text encoders: its conditioning widths are kept.
 *
 * `depth` n (integer ≥ 1):
 * - UNet2DConditionModel: `layers_per_block` = n on every level; every
 *   `transformer_layers_per_block` entry = min(entry, n) (SDXL [1, 2, 10] at n = 2: [1, 2, 2]).
 * - AutoencoderKL: `layers_per_block` = n.
 * - FluxTransformer2DModel: `num_layers` = n double-stream blocks, `num_single_layers` = n × the
 *   preset's single/double ratio, rounded (FLUX.1: 2n).
 * - SD3Transformer2DModel: `num_layers` = n (`dual_attention_layers` past n dropped).
 * - CLIPTextModel(WithProjection): `num_hidden_layers` = n.
 * - T5EncoderModel: `num_layers` (and `num_decoder_layers`) = n.
 */
import { ConfigError } from '../errors.js';

export interface ScaleOptions {
  widthMult?: number;
  depth?: number;
}

type Cfg = Record<string, unknown>;

export function checkScaleOptions(o: ScaleOptions): void {
  if (o.widthMult !== undefined && !(typeof o.widthMult === 'number' && Number.isFinite(o.widthMult) && o.widthMult > 0)) {
    throw new ConfigError('BAD_OPTION', `--width-mult ${o.widthMult} is not supported (a number > 0, e.g. 0.25)`, 'width-mult');
  }
  if (o.depth !== undefined && !(Number.isInteger(o.depth) && o.depth >= 1)) {
    throw new ConfigError('BAD_OPTION', `--depth ${o.depth} is not supported (an integer ≥ 1)`, 'depth');
  }
}

export function isScaled(o: ScaleOptions): boolean {
  return (o.widthMult !== undefined && o.widthMult !== 1) || o.depth !== undefined;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;

/** n × x rounded to the nearest multiple of m, at least m. */
export function roundTo(n: number, x: number, m: number): number {
  return Math.max(m, Math.round((n * x) / m) * m);
}

/** A count × x, rounded, at least 1. */
export function scaleCount(n: number, x: number): number {
  return Math.max(1, Math.round(n * x));
}

function num(c: Cfg, key: string, dflt: number): number {
  const v = c[key];
  return typeof v === 'number' ? v : dflt;
}

function perLevel(v: unknown, n: number, dflt: number): number[] {
  if (typeof v === 'number') return Array(n).fill(v);
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return Array(n).fill(dflt);
}

/** The conditioning a denoiser takes from its text encoders (already scaled). */
export interface EncoderConfigs {
  configs: Cfg[];
  /** the unscaled ones, for the parts of a width that do not come from an encoder */
  original: Cfg[];
}

const hidden = (c: Cfg) => num(c, 'hidden_size', num(c, 'd_model', 0));
const proj = (c: Cfg) => num(c, 'projection_dim', hidden(c));

/**
 * Makes encoder configs fit together as the denoiser's pipeline combines them (mutates). SD3:
 * the T5 width must hold the CLIP-L + CLIP-G concatenation.
 */
export function fitEncoders(denoiserClass: string, encoders: Cfg[]): void {
  if (denoiserClass === 'SD3Transformer2DModel' && encoders.length === 3) {
    const need = hidden(encoders[0]!) + hidden(encoders[1]!);
    const t5 = encoders[2]!;
    if (num(t5, 'd_model', 0) < need) t5.d_model = need;
  }
}

/** Returns a scaled copy of `config` (a config of class `className`). */
export function scaleConfig(className: string, config: Cfg, o: ScaleOptions, encoders?: EncoderConfigs): Cfg {
  checkScaleOptions(o);
  const c = structuredClone(config) as Cfg;
  const x = o.widthMult ?? 1;
  const d = o.depth;
  switch (className) {
    case 'UNet2DConditionModel':
      scaleUNet(c, x, d, encoders);
      break;
    case 'AutoencoderKL': {
      const groups = num(c, 'norm_num_groups', 32);
      const ch = (c.block_out_channels as number[] | undefined) ?? [64];
      if (x !== 1) c.block_out_channels = ch.map((v) => roundTo(v, x, groups));
      if (d !== undefined) c.layers_per_block = d;
      break;
    }
    case 'FluxTransformer2DModel': {
      if (x !== 1) c.num_attention_heads = scaleCount(num(c, 'num_attention_heads', 24), x);
      if (encoders && encoders.configs.length === 2) {
        c.pooled_projection_dim = hidden(encoders.configs[0]!);
        c.joint_attention_dim = hidden(encoders.configs[1]!);
      }
      if (d !== undefined) {
        const double = num(c, 'num_layers', 19);
        const single = num(c, 'num_single_layers', 38);
        c.num_layers = d;
        c.num_single_layers = Math.max(single > 0 ? 1 : 0, Math.round((d * single) / Math.max(1, double)));
      }
      break;
    }
    case 'SD3Transformer2DModel': {
      if (x !== 1) {
        const heads = scaleCount(num(c, 'num_attention_heads', 18), x);
        c.num_attention_heads = heads;
        c.caption_projection_dim = heads * num(c, 'attention_head_dim', 64);
      }
      if (encoders && encoders.configs.length === 3) {
        const [l, g, t5] = encoders.configs as [Cfg, Cfg, Cfg];
        c.pooled_projection_dim = proj(l) + proj(g);
        c.joint_attention_dim = hidden(t5);
      }
      if (d !== undefined) {
        c.num_layers = d;
        if (Array.isArray(c.dual_attention_layers)) c.dual_attention_layers = (c.dual_attention_layers as number[]).filter((i) => i < d);
      }
      break;
    }
    case 'CLIPTextModel':
    case 'CLIPTextModelWithProjection': {
      if (x !== 1) {
        const heads = num(c, 'num_attention_heads', 8);
        const h = num(c, 'hidden_size', 512);
        const heads2 = scaleCount(heads, x);
        const h2 = (h / heads) * heads2;
        c.num_attention_heads = heads2;
        c.hidden_size = h2;
        c.intermediate_size = Math.max(1, Math.round((num(c, 'intermediate_size', 2048) * h2) / h));
        c.projection_dim = Math.max(1, Math.round((num(c, 'projection_dim', 512) * h2) / h));
      }
      if (d !== undefined) c.num_hidden_layers = d;
      break;
    }
    case 'T5EncoderModel': {
      if (x !== 1) {
        const heads = num(c, 'num_heads', 8);
        const heads2 = scaleCount(heads, x);
        c.num_heads = heads2;
        c.d_model = Math.max(1, Math.round((num(c, 'd_model', 512) * heads2) / heads));
        c.d_ff = Math.max(1, Math.round((num(c, 'd_ff', 2048) * heads2) / heads));
      }
      if (d !== undefined) {
        c.num_layers = d;
        if (c.num_decoder_layers !== undefined) c.num_decoder_layers = d;
      }
      break;
    }
    default:
      throw new ConfigError('UNKNOWN_CLASS', `cannot scale class '${className}' (scalable: UNet2DConditionModel, AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel, CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel)`, 'class');
  }
  return c;
}

function scaleUNet(c: Cfg, x: number, d: number | undefined, encoders?: EncoderConfigs): void {
  const ch = (c.block_out_channels as number[] | undefined) ?? [320, 640, 1280, 1280];
  const n = ch.length;
  if (x !== 1) {
    const groups = num(c, 'norm_num_groups', 32);
    const heads = perLevel(c.attention_head_dim, n, 8);
    const down = (c.down_block_types as string[] | undefined) ?? [];
    const up = (c.up_block_types as string[] | undefined) ?? [];
    const mid = c.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : c.mid_block_type;
    c.block_out_channels = ch.map((v, i) => {
      const attn = /CrossAttn/.test(down[i] ?? '') || /CrossAttn/.test(up[n - 1 - i] ?? '') || (i === n - 1 && mid === 'UNetMidBlock2DCrossAttn');
      return roundTo(v, x, attn ? lcm(groups, heads[i]!) : groups);
    });
    if (typeof c.time_embedding_dim === 'number') c.time_embedding_dim = roundTo(c.time_embedding_dim, x, 2);
  }
  if (encoders && encoders.configs.length) {
    c.cross_attention_dim = encoders.configs.reduce((s, e) => s + hidden(e), 0);
    if (c.addition_embed_type === 'text_time' && typeof c.projection_class_embeddings_input_dim === 'number') {
      const last = encoders.configs.length - 1;
      c.projection_class_embeddings_input_dim = c.projection_class_embeddings_input_dim - proj(encoders.original[last]!) + proj(encoders.configs[last]!);
    }
  }
  if (d !== undefined) {
    c.layers_per_block = Array.isArray(c.layers_per_block) ? (c.layers_per_block as unknown[]).map(() => d) : d;
    for (const key of ['transformer_layers_per_block', 'reverse_transformer_layers_per_block']) {
      const v = c[key];
      if (typeof v === 'number') c[key] = Math.min(v, d);
      else if (Array.isArray(v)) c[key] = v.map((e) => (Array.isArray(e) ? Math.min(Math.max(...(e as number[])), d) : Math.min(e as number, d)));
    }
  }
}
