/**
 * transformers CLIPVisionModelWithProjection: the image tower of CLIP (what CLIP score and CMMD
 * embed pictures with). Scoped under `vision_model` and `visual_projection`, the names a full
 * `CLIPModel` checkpoint uses too, so `clipVisionConfig` lets it build from either folder.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import { Ctx } from './blocks/context.js';
import { layerNorm, linear } from './blocks/layers.js';
import { CLIP_ACTIVATION_NAMES, clipEncoderLayer } from './clip-text.js';
import { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import type { Weights } from './weights.js';

export const CLIP_VISION_CLASS = 'CLIPVisionModelWithProjection';

export interface ClipVisionOptions {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  imageSize: number;
  patchSize: number;
  channels: number;
  act: string;
  eps: number;
  projectionDim: number;
}

/**
 * The vision config of a CLIPVisionModelWithProjection folder as it is, or of a full CLIPModel
 * folder (e.g. openai/clip-vit-large-patch14): its `vision_config` with the top-level
 * `projection_dim`, under our class name.
 */
export function clipVisionConfig(config: ModelConfig): ModelConfig {
  if (config.className !== 'CLIPModel') return config;
  const vision = config.raw.vision_config;
  if (!vision || typeof vision !== 'object') throw new ModelFormatError('CONFIG_VALUE', "a CLIPModel config has no 'vision_config' object", { file: config.file });
  return new ModelConfig({ ...(vision as Record<string, unknown>), architectures: [CLIP_VISION_CLASS], projection_dim: config.raw.projection_dim ?? 512 }, config.file);
}

export function clipVisionOptions(config: ModelConfig): ClipVisionOptions {
  if (config.className !== CLIP_VISION_CLASS) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'architectures' = ${JSON.stringify(config.className)} is not supported (supported: ${CLIP_VISION_CLASS}, CLIPModel)`, { file: config.file });
  }
  config.expect('model_type', ['clip_vision_model']);
  const hidden = config.int('hidden_size', 768);
  const heads = config.int('num_attention_heads', 12);
  if (heads <= 0 || hidden % heads !== 0) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'num_attention_heads' = ${heads} does not divide hidden_size ${hidden}`, { file: config.file });
  }
  const imageSize = config.int('image_size', 224);
  const patchSize = config.int('patch_size', 32);
  if (patchSize <= 0 || imageSize % patchSize !== 0) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'patch_size' = ${patchSize} does not divide image_size ${imageSize}`, { file: config.file });
  }
  return {
    hidden,
    intermediate: config.int('intermediate_size', 3072),
    layers: config.int('num_hidden_layers', 12),
    heads,
    imageSize,
    patchSize,
    channels: config.int('num_channels', 3),
    act: config.oneOf('hidden_act', CLIP_ACTIVATION_NAMES, 'quick_gelu'),
    eps: config.num('layer_norm_eps', 1e-5),
    projectionDim: config.int('projection_dim', 512),
  };
}

/**
 * Input `pixel_values` [batch_size, channels, image_size, image_size] (CLIPImageProcessor's
 * output). Outputs `image_embeds` [batch_size, projection_dim], `last_hidden_state` (encoder
 * output, before the post LayerNorm, as transformers returns it) and `pooler_output`.
 */
export const buildCLIPVisionModelWithProjection: ArchitectureBuilder = (rawConfig: ModelConfig, weights: Weights) => {
  const o = clipVisionOptions(clipVisionConfig(rawConfig));
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);
  const D = o.hidden;
  const grid = o.imageSize / o.patchSize;
  const tokens = grid * grid + 1;
  const pixels = b.input('pixel_values', 'float32', ['batch_size', o.channels, o.imageSize, o.imageSize]);

  const { last, pooled } = c.scope('vision_model', () => {
    const emb = c.scope('embeddings', () => {
      const patches = c.scope('patch_embedding', () => {
        const w = c.param('weight', [D, o.channels, o.patchSize, o.patchSize]);
        const conv = b.op('Conv', [pixels, w], { kernel_shape: [o.patchSize, o.patchSize], pads: [0, 0, 0, 0], strides: [o.patchSize, o.patchSize], dilations: [1, 1], group: 1 });
        return b.transpose(b.reshape(conv, [0, D, -1]), [0, 2, 1]);
      });
      // the class token, one per batch entry, before the patches
      const cls = b.op('Expand', [b.reshape(c.param('class_embedding', [D]), [1, 1, D]), b.concat([b.shape(pixels, 0, 1), b.constI64([1, D])], 0)]);
      const pos = c.scope('position_embedding', () => c.param('weight', [tokens, D]));
      return b.add(b.concat([cls, patches], 1), pos);
    });
    // transformers' spelling: pre_layrnorm
    let h = layerNorm(c, 'pre_layrnorm', emb, D, o.eps);
    c.scope('encoder', () => {
      for (let i = 0; i < o.layers; i++) h = c.scope(`layers.${i}`, () => clipEncoderLayer(c, h, o, D / o.heads));
    });
    const first = b.op('Gather', [h, b.constI64(0)], { axis: 1 });
    return { last: h, pooled: layerNorm(c, 'post_layernorm', first, D, o.eps) };
  });
  b.output(last, 'last_hidden_state', 'float32', ['batch_size', tokens, D]);
  b.output(pooled, 'pooler_output', 'float32', ['batch_size', D]);
  b.output(linear(c, 'visual_projection', pooled, D, o.projectionDim, false), 'image_embeds', 'float32', ['batch_size', o.projectionDim]);
  const m = b.model({ '': 17 });
  m.metadataProps.set('diffusers.class_name', CLIP_VISION_CLASS);
  m.metadataProps.set('transformers.model_type', 'clip_vision_model');
  m.metadataProps.set('num_hidden_layers', String(o.layers));
  return { model: m };
};
