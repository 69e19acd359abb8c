/**
 * diffusers FluxTransformer2DModel (FLUX.1 dev/schnell): double-stream MMDiT blocks over the
 * text and image tokens, then single-stream blocks over their concatenation, with a rotary
 * embedding computed from the text and image position ids.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { adaLayerNormContinuous, adaLayerNormZero, adaLayerNormZeroSingle } from './blocks/ada-norm.js';
import { Ctx } from './blocks/context.js';
import { feedForward } from './blocks/feed-forward.js';
import { jointAttention, selfAttention, type AttentionOptions } from './blocks/joint-attention.js';
import { gelu, layerNorm, linear } from './blocks/layers.js';
import { rotaryEmbedding, type Rotary } from './blocks/rotary.js';
import { combinedTimestepGuidanceTextProjEmbeddings, combinedTimestepTextProjEmbeddings } from './blocks/transformer-embeddings.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import { recordDenoiserBlocks } from './block-patterns.js';

export interface FluxConfig {
  patchSize: number;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  numSingleLayers: number;
  heads: number;
  headDim: number;
  jointAttentionDim: number;
  pooledProjectionDim: number;
  guidanceEmbeds: boolean;
  axesDimsRope: number[];
}

export function readFluxConfig(config: ModelConfig): FluxConfig {
  const inChannels = config.int('in_channels', 64);
  const heads = config.int('num_attention_heads', 24);
  const headDim = config.int('attention_head_dim', 128);
  const axes = config.list<unknown>('axes_dims_rope', [16, 56, 56]);
  const axesOk = axes.length > 0 && axes.every((a) => Number.isInteger(a) && (a as number) > 0 && (a as number) % 2 === 0);
  const sum = axesOk ? (axes as number[]).reduce((s, a) => s + a, 0) : -1;
  if (sum !== headDim) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'axes_dims_rope' = ${JSON.stringify(axes)} is not supported (needs positive even sizes summing to attention_head_dim = ${headDim})`, { file: config.file });
  }
  return {
    patchSize: config.int('patch_size', 1),
    inChannels,
    outChannels: config.has('out_channels') ? config.int('out_channels') : inChannels,
    numLayers: config.int('num_layers', 19),
    numSingleLayers: config.int('num_single_layers', 38),
    heads,
    headDim,
    jointAttentionDim: config.int('joint_attention_dim', 4096),
    pooledProjectionDim: config.int('pooled_projection_dim', 768),
    guidanceEmbeds: config.bool('guidance_embeds', false),
    axesDimsRope: axes as number[],
  };
}

/** FluxTransformerBlock: returns the new (context, sample). */
function doubleBlock(c: Ctx, x: Value, ctx: Value, temb: Value, rope: Rotary, dim: number, attn: AttentionOptions): { x: Value; ctx: Value } {
  const b = c.b;
  const n = adaLayerNormZero(c, 'norm1', x, temb, dim);
  const cn = adaLayerNormZero(c, 'norm1_context', ctx, temb, dim);
  const a = jointAttention(c, 'attn', n.x, cn.x, { ...attn, rope, contextFirst: true });

  x = b.add(x, b.mul(n.gateMsa, a.x));
  let h = layerNorm(c, 'norm2', x, dim, 1e-6, false);
  h = b.add(b.mul(h, b.add(n.scaleMlp, b.constF32(1))), n.shiftMlp);
  x = b.add(x, b.mul(n.gateMlp, feedForward(c, 'ff', h, dim, { activation: 'gelu-approximate' })));

  ctx = b.add(ctx, b.mul(cn.gateMsa, a.ctx!));
  let ch = layerNorm(c, 'norm2_context', ctx, dim, 1e-6, false);
  ch = b.add(b.mul(ch, b.add(cn.scaleMlp, b.constF32(1))), cn.shiftMlp);
  ctx = b.add(ctx, b.mul(cn.gateMlp, feedForward(c, 'ff_context', ch, dim, { activation: 'gelu-approximate' })));
  return { x, ctx };
}

/** FluxSingleTransformerBlock: parallel attention and MLP, fused by proj_out. */
function singleBlock(c: Ctx, x: Value, temb: Value, rope: Rotary, dim: number, attn: AttentionOptions): Value {
  const b = c.b;
  const mlpDim = dim * 4;
  const n = adaLayerNormZeroSingle(c, 'norm', x, temb, dim);
  const proj = linear(c, 'proj_mlp', n.x, dim, mlpDim);
  const mlp = c.scope('act_mlp', () => gelu(c, proj, 'tanh'));
  const a = selfAttention(c, 'attn', n.x, { ...attn, rope, outProj: false });
  const out = linear(c, 'proj_out', b.concat([a, mlp], 2), dim + mlpDim, dim);
  return b.add(x, b.mul(n.gate, out));
}

export const buildFluxTransformer2DModel: ArchitectureBuilder = (config, weights) => {
  const cfg = readFluxConfig(config);
  const dim = cfg.heads * cfg.headDim;
  const b = new GraphBuilder();
  const c = new Ctx(b, weights);

  const hidden = b.input('hidden_states', 'float32', ['batch_size', 'packed_height_width', cfg.inChannels]);
  const context = b.input('encoder_hidden_states', 'float32', ['batch_size', 'sequence_length', cfg.jointAttentionDim]);
  const pooled = b.input('pooled_projections', 'float32', ['batch_size', cfg.pooledProjectionDim]);
  const timestep = b.input('timestep', 'float32', ['batch_size']);
  const imgIds = b.input('img_ids', 'float32', ['packed_height_width', cfg.axesDimsRope.length]);
  const txtIds = b.input('txt_ids', 'float32', ['sequence_length', cfg.axesDimsRope.length]);
  const guidance = cfg.guidanceEmbeds ? b.input('guidance', 'float32', ['batch_size']) : undefined;

  let x = linear(c, 'x_embedder', hidden, cfg.inChannels, dim);
  // the pipeline passes t/1000 and the raw guidance scale; the model scales both by 1000
  const thousand = b.constF32(1000);
  const t = b.mul(timestep, thousand);
  const temb = guidance
    ? combinedTimestepGuidanceTextProjEmbeddings(c, 'time_text_embed', t, b.mul(guidance, thousand), pooled, dim, cfg.pooledProjectionDim)
    : combinedTimestepTextProjEmbeddings(c, 'time_text_embed', t, pooled, dim, cfg.pooledProjectionDim);
  let ctx = linear(c, 'context_embedder', context, cfg.jointAttentionDim, dim);
  const rope = rotaryEmbedding(c, 'pos_embed', b.concat([txtIds, imgIds], 0), cfg.axesDimsRope);

  const attn: AttentionOptions = { dim, heads: cfg.heads, headDim: cfg.headDim, qkNorm: 'rms_norm', eps: 1e-6 };
  for (let i = 0; i < cfg.numLayers; i++) {
    ({ x, ctx } = c.scope(`transformer_blocks.${i}`, () => doubleBlock(c, x, ctx, temb, rope, dim, attn)));
  }
  let h = b.concat([ctx, x], 1);
  for (let i = 0; i < cfg.numSingleLayers; i++) {
    h = c.scope(`single_transformer_blocks.${i}`, () => singleBlock(c, h, temb, rope, dim, attn));
  }
  x = b.op('Slice', [h, b.shape(ctx, 1, 2), b.constI64([Number.MAX_SAFE_INTEGER]), b.constI64([1])]);

  x = adaLayerNormContinuous(c, 'norm_out', x, temb, dim, dim, 1e-6, false);
  const outDim = cfg.patchSize * cfg.patchSize * cfg.outChannels;
  const out = linear(c, 'proj_out', x, dim, outDim);
  b.output(out, 'out_hidden_states', 'float32', ['batch_size', 'packed_height_width', outDim]);

  const model = b.model({ '': 17 });
  model.metadataProps.set('diffusers.class_name', 'FluxTransformer2DModel');
  if (config.has('_diffusers_version')) model.metadataProps.set('diffusers.version', config.str('_diffusers_version'));
  model.metadataProps.set('guidance_embeds', String(cfg.guidanceEmbeds));
  recordDenoiserBlocks(model);
  return { model };
};
