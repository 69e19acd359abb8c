/**
 * The released configs of the models `create-random` can reproduce, as their repositories
 * ship them (config.json of each component). Written from the public repositories named in
 * `source`; the keys that decide the tensor layout were cross-checked against public copies.
 */
import { ConfigError } from '../errors.js';

export type Library = 'diffusers' | 'transformers';

export interface Preset {
  name: string;
  /** `_class_name` (diffusers) or `architectures[0]` (transformers) */
  className: string;
  library: Library;
  /** repository (and subfolder) the config comes from */
  source: string;
  description: string;
  config: Readonly<Record<string, unknown>>;
  /**
   * For denoisers: the presets of the text encoders their pipeline feeds them, in pipeline
   * order. `--width-mult` derives the conditioning widths (cross_attention_dim,
   * joint_attention_dim, pooled_projection_dim …) from these encoders scaled the same way.
   */
  encoders?: readonly string[];
  /** listed by `--help` (the others are the pipelines' own component variants) */
  listed: boolean;
}

const UNET_SD_DOWN = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'];
const UNET_SD_UP = ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'];
const VAE_DOWN = ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'];
const VAE_UP = ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'];

// ---------------------------------------------------------------- denoisers

const SD15_UNET = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.6.0',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: UNET_SD_DOWN,
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: UNET_SD_UP,
};

const SD2_UNET = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.10.0.dev0',
  act_fn: 'silu',
  attention_head_dim: [5, 10, 20, 20],
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 1024,
  down_block_types: UNET_SD_DOWN,
  downsample_padding: 1,
  dual_cross_attention: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  num_class_embeds: null,
  only_cross_attention: false,
  out_channels: 4,
  sample_size: 96,
  up_block_types: UNET_SD_UP,
  use_linear_projection: true,
  upcast_attention: true,
};

const SDXL_UNET = {
  _class_name: 'UNet2DConditionModel',
  _diffusers_version: '0.19.0.dev0',
  act_fn: 'silu',
  addition_embed_type: 'text_time',
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  center_input_sample: false,
  class_embed_type: null,
  class_embeddings_concat: false,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  cross_attention_dim: 2048,
  cross_attention_norm: null,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  downsample_padding: 1,
  dual_cross_attention: false,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_only_cross_attention: null,
  mid_block_scale_factor: 1,
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  norm_eps: 1e-5,
  norm_num_groups: 32,
  num_attention_heads: null,
  num_class_embeds: null,
  only_cross_attention: false,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  resnet_out_scale_factor: 1.0,
  resnet_skip_time_act: false,
  resnet_time_scale_shift: 'default',
  sample_size: 128,
  time_cond_proj_dim: null,
  time_embedding_act_fn: null,
  time_embedding_dim: null,
  time_embedding_type: 'positional',
  timestep_post_act: null,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  upcast_attention: null,
  use_linear_projection: true,
};

const SD3_MEDIUM = {
  _class_name: 'SD3Transformer2DModel',
  _diffusers_version: '0.29.0.dev0',
  attention_head_dim: 64,
  caption_projection_dim: 1536,
  in_channels: 16,
  joint_attention_dim: 4096,
  num_attention_heads: 24,
  num_layers: 24,
  out_channels: 16,
  patch_size: 2,
  pooled_projection_dim: 2048,
  pos_embed_max_size: 192,
  sample_size: 128,
};

const FLUX_DEV = {
  _class_name: 'FluxTransformer2DModel',
  _diffusers_version: '0.30.0.dev0',
  _name_or_path: '../checkpoints/flux-dev/transformer',
  attention_head_dim: 128,
  guidance_embeds: true,
  in_channels: 64,
  joint_attention_dim: 4096,
  num_attention_heads: 24,
  num_layers: 19,
  num_single_layers: 38,
  patch_size: 1,
  pooled_projection_dim: 768,
};

const FLUX_SCHNELL = {
  _class_name: 'FluxTransformer2DModel',
  _diffusers_version: '0.30.0.dev0',
  attention_head_dim: 128,
  guidance_embeds: false,
  in_channels: 64,
  joint_attention_dim: 4096,
  num_attention_heads: 24,
  num_layers: 19,
  num_single_layers: 38,
  patch_size: 1,
  pooled_projection_dim: 768,
};

// ---------------------------------------------------------------- VAEs

const VAE_SD = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.6.0',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: VAE_DOWN,
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: VAE_UP,
};

const VAE_SDXL = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.20.0.dev0',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: VAE_DOWN,
  force_upcast: true,
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 1024,
  scaling_factor: 0.13025,
  up_block_types: VAE_UP,
};

const VAE_SD3 = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.29.0.dev0',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: VAE_DOWN,
  force_upcast: true,
  in_channels: 3,
  latent_channels: 16,
  latents_mean: null,
  latents_std: null,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 1024,
  scaling_factor: 1.5305,
  shift_factor: 0.0609,
  up_block_types: VAE_UP,
  use_post_quant_conv: false,
  use_quant_conv: false,
};

const VAE_FLUX = {
  _class_name: 'AutoencoderKL',
  _diffusers_version: '0.30.0.dev0',
  _name_or_path: '../checkpoints/flux-dev',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: VAE_DOWN,
  force_upcast: true,
  in_channels: 3,
  latent_channels: 16,
  latents_mean: null,
  latents_std: null,
  layers_per_block: 2,
  mid_block_add_attention: true,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 1024,
  scaling_factor: 0.3611,
  shift_factor: 0.1159,
  up_block_types: VAE_UP,
  use_post_quant_conv: false,
  use_quant_conv: false,
};

// ---------------------------------------------------------------- text encoders

/** openai/clip-vit-large-patch14's text tower, as SD 1.5's text_encoder/config.json has it. */
const CLIP_L = {
  _name_or_path: 'openai/clip-vit-large-patch14',
  architectures: ['CLIPTextModel'],
  attention_dropout: 0.0,
  bos_token_id: 0,
  dropout: 0.0,
  eos_token_id: 2,
  hidden_act: 'quick_gelu',
  hidden_size: 768,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  projection_dim: 768,
  torch_dtype: 'float32',
  transformers_version: '4.22.0.dev0',
  vocab_size: 49408,
};

/** OpenCLIP ViT-H/14's text tower (SD 2.x text_encoder): 23 layers, the last one dropped. */
const CLIP_H = {
  _name_or_path: 'hf-models/stable-diffusion-v2-768x768/text_encoder',
  architectures: ['CLIPTextModel'],
  attention_dropout: 0.0,
  bos_token_id: 0,
  dropout: 0.0,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_size: 1024,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 4096,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 16,
  num_hidden_layers: 23,
  pad_token_id: 1,
  projection_dim: 512,
  torch_dtype: 'float32',
  transformers_version: '4.25.0.dev0',
  vocab_size: 49408,
};

/** laion/CLIP-ViT-bigG-14-laion2B-39B-b160k's text tower with projection (SDXL text_encoder_2). */
const CLIP_G = {
  architectures: ['CLIPTextModelWithProjection'],
  attention_dropout: 0.0,
  bos_token_id: 0,
  dropout: 0.0,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_size: 1280,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 5120,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 20,
  num_hidden_layers: 32,
  pad_token_id: 1,
  projection_dim: 1280,
  torch_dtype: 'float16',
  transformers_version: '4.32.0.dev0',
  vocab_size: 49408,
};

/** google/t5-v1_1-xxl's encoder, as FLUX.1's text_encoder_2/config.json has it. */
const T5_XXL = {
  _name_or_path: 'google/t5-v1_1-xxl',
  architectures: ['T5EncoderModel'],
  classifier_dropout: 0.0,
  d_ff: 10240,
  d_kv: 64,
  d_model: 4096,
  decoder_start_token_id: 0,
  dense_act_fn: 'gelu_new',
  dropout_rate: 0.1,
  eos_token_id: 1,
  feed_forward_proj: 'gated-gelu',
  initializer_factor: 1.0,
  is_encoder_decoder: true,
  is_gated_act: true,
  layer_norm_epsilon: 1e-6,
  model_type: 't5',
  num_decoder_layers: 24,
  num_heads: 64,
  num_layers: 24,
  output_past: true,
  pad_token_id: 0,
  relative_attention_max_distance: 128,
  relative_attention_num_buckets: 32,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.3',
  use_cache: true,
  vocab_size: 32128,
};

// The pipelines' own variants: same layout, the fields their repositories differ in.
const CLIP_L_SDXL = { ...CLIP_L, torch_dtype: 'float16', transformers_version: '4.32.0.dev0' };
const CLIP_L_FLUX = { ...CLIP_L, torch_dtype: 'bfloat16', transformers_version: '4.43.3' };
const CLIP_L_SD3 = (() => {
  const { _name_or_path: _, ...rest } = CLIP_L;
  return { ...rest, architectures: ['CLIPTextModelWithProjection'], torch_dtype: 'float16', transformers_version: '4.41.0.dev0' };
})();
const CLIP_G_SD3 = { ...CLIP_G, transformers_version: '4.41.0.dev0' };
const T5_XXL_SD3 = (() => {
  const { _name_or_path: _, ...rest } = T5_XXL;
  return { ...rest, torch_dtype: 'float16', transformers_version: '4.41.0.dev0' };
})();

function p(name: string, className: string, source: string, description: string, config: Record<string, unknown>, extra: Partial<Preset> = {}): Preset {
  const library: Library = Array.isArray(config.architectures) ? 'transformers' : 'diffusers';
  return { name, className, library, source, description, config, listed: true, ...extra };
}

export const PRESETS: readonly Preset[] = [
  p('sd15', 'UNet2DConditionModel', 'runwayml/stable-diffusion-v1-5 unet', 'Stable Diffusion 1.5 UNet', SD15_UNET, { encoders: ['clip-l'] }),
  p('sd2', 'UNet2DConditionModel', 'stabilityai/stable-diffusion-2-1 unet', 'Stable Diffusion 2.1 UNet (v-prediction, 768)', SD2_UNET, { encoders: ['clip-h'] }),
  p('sdxl', 'UNet2DConditionModel', 'stabilityai/stable-diffusion-xl-base-1.0 unet', 'SDXL base 1.0 UNet', SDXL_UNET, { encoders: ['clip-l', 'clip-g'] }),
  p('sd3-medium', 'SD3Transformer2DModel', 'stabilityai/stable-diffusion-3-medium-diffusers transformer', 'Stable Diffusion 3 medium MMDiT', SD3_MEDIUM, { encoders: ['clip-l', 'clip-g', 't5-xxl'] }),
  p('flux-dev', 'FluxTransformer2DModel', 'black-forest-labs/FLUX.1-dev transformer', 'FLUX.1 [dev] transformer (guidance embedding)', FLUX_DEV, { encoders: ['clip-l', 't5-xxl'] }),
  p('flux-schnell', 'FluxTransformer2DModel', 'black-forest-labs/FLUX.1-schnell transformer', 'FLUX.1 [schnell] transformer', FLUX_SCHNELL, { encoders: ['clip-l', 't5-xxl'] }),
  p('clip-l', 'CLIPTextModel', 'openai/clip-vit-large-patch14 (runwayml/stable-diffusion-v1-5 text_encoder)', 'CLIP ViT-L/14 text model', CLIP_L),
  p('clip-h', 'CLIPTextModel', 'stabilityai/stable-diffusion-2-1 text_encoder', 'OpenCLIP ViT-H/14 text model (SD 2.x)', CLIP_H),
  p('clip-g', 'CLIPTextModelWithProjection', 'laion/CLIP-ViT-bigG-14-laion2B-39B-b160k (stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2)', 'OpenCLIP ViT-bigG/14 text model with projection', CLIP_G),
  p('t5-xxl', 'T5EncoderModel', 'google/t5-v1_1-xxl (black-forest-labs/FLUX.1-dev text_encoder_2)', 'T5 v1.1 XXL encoder', T5_XXL),
  p('vae-sd', 'AutoencoderKL', 'runwayml/stable-diffusion-v1-5 vae', 'SD 1.x/2.x VAE (4 latent channels)', VAE_SD),
  p('vae-sdxl', 'AutoencoderKL', 'stabilityai/stable-diffusion-xl-base-1.0 vae', 'SDXL VAE (4 latent channels, scaling 0.13025)', VAE_SDXL),
  p('vae-sd3', 'AutoencoderKL', 'stabilityai/stable-diffusion-3-medium-diffusers vae', 'SD3 VAE (16 latent channels, no quant convs)', VAE_SD3),
  p('vae-flux', 'AutoencoderKL', 'black-forest-labs/FLUX.1-dev vae', 'FLUX.1 VAE (16 latent channels, no quant convs)', VAE_FLUX),
  // component variants the pipelines write (same layouts as the presets above)
  p('clip-l-sdxl', 'CLIPTextModel', 'stabilityai/stable-diffusion-xl-base-1.0 text_encoder', 'CLIP ViT-L/14 text model (SDXL)', CLIP_L_SDXL, { listed: false }),
  p('clip-l-flux', 'CLIPTextModel', 'black-forest-labs/FLUX.1-dev text_encoder', 'CLIP ViT-L/14 text model (FLUX.1)', CLIP_L_FLUX, { listed: false }),
  p('clip-l-sd3', 'CLIPTextModelWithProjection', 'stabilityai/stable-diffusion-3-medium-diffusers text_encoder', 'CLIP ViT-L/14 text model with projection (SD3)', CLIP_L_SD3, { listed: false }),
  p('clip-g-sd3', 'CLIPTextModelWithProjection', 'stabilityai/stable-diffusion-3-medium-diffusers text_encoder_2', 'OpenCLIP ViT-bigG/14 with projection (SD3)', CLIP_G_SD3, { listed: false }),
  p('t5-xxl-sd3', 'T5EncoderModel', 'stabilityai/stable-diffusion-3-medium-diffusers text_encoder_3', 'T5 v1.1 XXL encoder (SD3)', T5_XXL_SD3, { listed: false }),
];

export function presetNames(all = false): string[] {
  return PRESETS.filter((x) => all || x.listed).map((x) => x.name);
}

export function findPreset(name: string): Preset | undefined {
  return PRESETS.find((x) => x.name === name);
}

export function getPreset(name: string, option = 'config'): Preset {
  const preset = findPreset(name);
  if (!preset) throw new ConfigError('UNKNOWN_PRESET', `--${option} ${name}: no such preset (presets: ${presetNames().join(', ')}; or a path to a config.json)`, option);
  return preset;
}

/** A deep copy of the preset's config, safe to modify. */
export function presetConfig(name: string): Record<string, unknown> {
  return structuredClone(getPreset(name).config) as Record<string, unknown>;
}

/** The transformers classes (their weights file is model.safetensors); the rest are diffusers classes. */
export const TRANSFORMERS_CLASSES = ['CLIPTextModel', 'CLIPTextModelWithProjection', 'T5EncoderModel'] as const;

export function libraryOf(className: string): Library {
  return (TRANSFORMERS_CLASSES as readonly string[]).includes(className) ? 'transformers' : 'diffusers';
}
