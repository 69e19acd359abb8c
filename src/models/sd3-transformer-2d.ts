/**
 * diffusers SD3Transformer2DModel (SD3, SD3.5): patch embedding with a cropped sincos grid, MMDiT
 * joint blocks (the last one `context_pre_only`), optional per-head RMSNorm (`qk_norm`) and
 * SD3.5-medium's extra self-attention (`dual_attention_layers`), then unpatchify to NCHW.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { adaLayerNormContinuous, adaLayerNormZero, sd35AdaLayerNormZeroX, type AdaNormZeroOut } from './blocks/ada-norm.js';
import { Ctx } from './blocks/context.js';
import { feedForward } from './blocks/feed-forward.js';
import { jointAttention, selfAttention, type AttentionOptions, type QkNorm } from './blocks/joint-attention.js';
import { layerNorm, linear } from './blocks/layers.js';
import { combinedTimestepTextProjEmbeddings, patchEmbed } from './blocks/transformer-embeddings.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import { recordDenoiserBlocks } from './block-patterns.js';

export interface SD3Config {
  sampleSize: number;
  patchSize: number;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  heads: number;
  headDim: number;
  jointAttentionDim: number;
  captionProjectionDim: number;
  pooledProjectionDim: number;
  posEmbedMaxSize: number;
  dualAttentionLayers: Set<number>;
  qkNorm: QkNorm;
}

export function readSD3Config(config: ModelConfig): SD3Config {
  const fail = (key: string, msg: string): never => {
    throw new ModelFormatError('CONFIG_VALUE', `config key '${key}' ${msg}`, { file: config.file });
  };
  const inChannels = config.int('in_channels', 16);
  const heads = config.int('num_attention_heads', 18);
  const headDim = config.int('attention_head_dim', 64);
  const numLayers = config.int('num_layers', 18);
  // null builds the grid per input size in diffusers; every released SD3 sets it
  if (config.raw.pos_embed_max_size === null) fail('pos_embed_max_size', '= null is not supported (supported: an integer)');
  const posEmbedMaxSize = config.int('pos_embed_max_size', 96);
  // the blocks' context projections take inner_dim inputs, so diffusers only runs with these equal
  const captionProjectionDim = config.int('caption_projection_dim', 1152);
  if (captionProjectionDim !== heads * headDim) fail('caption_projection_dim', `= ${captionProjectionDim} is not supported (must equal num_attention_heads × attention_head_dim = ${heads * headDim})`);
  const dual = config.list<unknown>('dual_attention_layers', []);
  if (!dual.every((i) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < numLayers)) {
    fail('dual_attention_layers', `= ${JSON.stringify(dual)} is not supported (supported: block indices 0..${numLayers - 1})`);
  }
  return {
    sampleSize: config.int('sample_size', 128),
    patchSize: config.int('patch_size', 2),
    inChannels,
    outChannels: config.has('out_channels') ? config.int('out_channels') : inChannels,
    numLayers,
    heads,
    headDim,
    jointAttentionDim: config.int('joint_attention_dim', 4096),
    captionProjectionDim,
    pooledProjectionDim: config.int('pooled_projection_dim', 2048),
    posEmbedMaxSize,
    dualAttentionLayers: new Set(dual as number[]),
    qkNorm: config.oneOf<QkNorm>('qk_norm', [null, 'rms_norm'], null),
  };
}

/** JointTransformerBlock: returns the new (context or null, sample). */
function jointBlock(c: Ctx, x: Value, ctx: Value, temb: Value, dim: number, attn: AttentionOptions, contextPreOnly: boolean, dual: boolean): { x: Value; ctx: Value | null } {
  const b = c.b;
  const modulate = (h: Value, scale: Value, shift: Value) => b.add(b.mul(h, b.add(scale, b.constF32(1))), shift);
  const n: AdaNormZeroOut & { x2?: Value; gateMsa2?: Value } = dual ? sd35AdaLayerNormZeroX(c, 'norm1', x, temb, dim) : adaLayerNormZero(c, 'norm1', x, temb, dim);
  const cn = contextPreOnly ? null : adaLayerNormZero(c, 'norm1_context', ctx, temb, dim);
  const cx = cn ? cn.x : adaLayerNormContinuous(c, 'norm1_context', ctx, temb, dim, dim, 1e-6, false);
  const a = jointAttention(c, 'attn', n.x, cx, { ...attn, contextFirst: false, contextPreOnly });

  x = b.add(x, b.mul(n.gateMsa, a.x));
  if (dual) x = b.add(x, b.mul(n.gateMsa2!, selfAttention(c, 'attn2', n.x2!, { ...attn, outProj: true })));
  const h = modulate(layerNorm(c, 'norm2', x, dim, 1e-6, false), n.scaleMlp, n.shiftMlp);
  x = b.add(x, b.mul(n.gateMlp, feedForward(c, 'ff', h, dim, { activation: 'gelu-approximate' })));
  if (!cn) return { x, ctx: null };

  ctx = b.add(ctx, b.mul(cn.gateMsa, a.ctx!));
  const ch = modulate(layerNorm(c, 'norm2_context', ctx, dim, 1e-6, false), cn.scaleMlp, cn.shiftMlp);
  ctx = b.add(ctx, b.mul(cn.gateMlp, feedForward(c, 'ff_context', ch, dim, { activation: 'gelu-approximate' })));
  return { x, ctx };
}

export const buildSD3Transformer2DModel: ArchitectureBuilder = (config, weights) => {
  const cfg = readSD3Config(config);
  const dim = cfg.heads * cfg.headDim;
  const p = cfg.patchSize;
  const b = new GraphBuilder();
  const c = new Ctx(b, weights);

  const hidden = b.input('hidden_states', 'float32', ['batch_size', cfg.inChannels, 'height', 'width']);
  const context = b.input('encoder_hidden_states', 'float32', ['batch_size', 'sequence_length', cfg.jointAttentionDim]);
  const pooled = b.input('pooled_projections', 'float32', ['batch_size', cfg.pooledProjectionDim]);
  const timestep = b.input('timestep', 'float32', ['batch_size']);

  let x = patchEmbed(c, 'pos_embed', hidden, {
    patchSize: p, inChannels: cfg.inChannels, embedDim: dim, posEmbedMaxSize: cfg.posEmbedMaxSize, baseSize: Math.floor(cfg.sampleSize / p),
  });
  const temb = combinedTimestepTextProjEmbeddings(c, 'time_text_embed', timestep, pooled, dim, cfg.pooledProjectionDim);
  let ctx: Value | null = linear(c, 'context_embedder', context, cfg.jointAttentionDim, cfg.captionProjectionDim);

  const attn: AttentionOptions = { dim, heads: cfg.heads, headDim: cfg.headDim, qkNorm: cfg.qkNorm, eps: 1e-6 };
  for (let i = 0; i < cfg.numLayers; i++) {
    const last = i === cfg.numLayers - 1;
    ({ x, ctx } = c.scope(`transformer_blocks.${i}`, () => jointBlock(c, x, ctx!, temb, dim, attn, last, cfg.dualAttentionLayers.has(i))));
  }

  x = adaLayerNormContinuous(c, 'norm_out', x, temb, dim, dim, 1e-6, false);
  x = linear(c, 'proj_out', x, dim, p * p * cfg.outChannels);
  // unpatchify: [B, h·w, p·p·C] -> [B, h, w, p, p, C] -> [B, C, h, p, w, p] -> [B, C, h·p, w·p]
  const hw = b.div(b.shape(hidden, 2, 4), b.constI64(p));
  const [h, w] = b.split(hw, [1, 1], 0) as [Value, Value];
  const patches = b.op('Reshape', [x, b.concat([b.constI64([0]), h, w, b.constI64([p, p, cfg.outChannels])], 0)]);
  const nchw = b.transpose(patches, [0, 5, 1, 3, 2, 4]);
  const size = b.mul(hw, b.constI64(p));
  const out = b.op('Reshape', [nchw, b.concat([b.constI64([0, cfg.outChannels]), size], 0)]);
  b.output(out, 'out_hidden_states', 'float32', ['batch_size', cfg.outChannels, 'height', 'width']);

  const model = b.model({ '': 17 });
  model.metadataProps.set('diffusers.class_name', 'SD3Transformer2DModel');
  if (config.has('_diffusers_version')) model.metadataProps.set('diffusers.version', config.str('_diffusers_version'));
  model.metadataProps.set('patch_size', String(p));
  recordDenoiserBlocks(model);
  return { model };
};
