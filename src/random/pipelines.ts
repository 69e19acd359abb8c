/**
 * Whole pipelines as released: which component presets go in which folders, the tokenizers,
 * the scheduler config and model_index.json.
 */
import { ConfigError } from '../errors.js';

export const PIPELINES = ['sd15', 'sdxl', 'sd3', 'flux-dev', 'flux-schnell'] as const;
export type PipelineName = (typeof PIPELINES)[number];

export type TokenizerKind = 'clip' | 'clip-pad-bang' | 't5';

export interface PipelineDef {
  name: PipelineName;
  source: string;
  /** the denoiser preset (its `encoders` are the text encoders below, in order) */
  denoiser: { folder: string; preset: string };
  /** text encoders in pipeline order: folder + preset (the pipeline's own variant) */
  encoders: { folder: string; preset: string }[];
  vae: string;
  tokenizers: { folder: string; kind: TokenizerKind; maxLength?: number }[];
  scheduler: Record<string, unknown>;
  modelIndex: Record<string, unknown>;
}

const SD_BETAS = { beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085 };

const DEFS: Record<PipelineName, PipelineDef> = {
  sd15: {
    name: 'sd15',
    source: 'runwayml/stable-diffusion-v1-5',
    denoiser: { folder: 'unet', preset: 'sd15' },
    encoders: [{ folder: 'text_encoder', preset: 'clip-l' }],
    vae: 'vae-sd',
    tokenizers: [{ folder: 'tokenizer', kind: 'clip' }],
    scheduler: {
      _class_name: 'PNDMScheduler',
      _diffusers_version: '0.6.0',
      ...SD_BETAS,
      num_train_timesteps: 1000,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
      clip_sample: false,
    },
    modelIndex: {
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: '0.6.0',
      // the released repository also ships a safety checker and its feature extractor
      feature_extractor: [null, null],
      requires_safety_checker: false,
      safety_checker: [null, null],
      scheduler: ['diffusers', 'PNDMScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    },
  },
  sdxl: {
    name: 'sdxl',
    source: 'stabilityai/stable-diffusion-xl-base-1.0',
    denoiser: { folder: 'unet', preset: 'sdxl' },
    encoders: [
      { folder: 'text_encoder', preset: 'clip-l-sdxl' },
      { folder: 'text_encoder_2', preset: 'clip-g' },
    ],
    vae: 'vae-sdxl',
    tokenizers: [
      { folder: 'tokenizer', kind: 'clip' },
      { folder: 'tokenizer_2', kind: 'clip-pad-bang' },
    ],
    scheduler: {
      _class_name: 'EulerDiscreteScheduler',
      _diffusers_version: '0.19.0.dev0',
      ...SD_BETAS,
      clip_sample: false,
      interpolation_type: 'linear',
      num_train_timesteps: 1000,
      prediction_type: 'epsilon',
      sample_max_value: 1.0,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      timestep_spacing: 'leading',
      trained_betas: null,
      use_karras_sigmas: false,
    },
    modelIndex: {
      _class_name: 'StableDiffusionXLPipeline',
      _diffusers_version: '0.19.0.dev0',
      force_zeros_for_empty_prompt: true,
      add_watermarker: null,
      scheduler: ['diffusers', 'EulerDiscreteScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      tokenizer_2: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    },
  },
  sd3: {
    name: 'sd3',
    source: 'stabilityai/stable-diffusion-3-medium-diffusers',
    denoiser: { folder: 'transformer', preset: 'sd3-medium' },
    encoders: [
      { folder: 'text_encoder', preset: 'clip-l-sd3' },
      { folder: 'text_encoder_2', preset: 'clip-g-sd3' },
      { folder: 'text_encoder_3', preset: 't5-xxl-sd3' },
    ],
    vae: 'vae-sd3',
    tokenizers: [
      { folder: 'tokenizer', kind: 'clip' },
      { folder: 'tokenizer_2', kind: 'clip-pad-bang' },
      { folder: 'tokenizer_3', kind: 't5', maxLength: 512 },
    ],
    scheduler: { _class_name: 'FlowMatchEulerDiscreteScheduler', _diffusers_version: '0.29.0.dev0', num_train_timesteps: 1000, shift: 3.0 },
    modelIndex: {
      _class_name: 'StableDiffusion3Pipeline',
      _diffusers_version: '0.29.0.dev0',
      scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
      text_encoder: ['transformers', 'CLIPTextModelWithProjection'],
      text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'],
      text_encoder_3: ['transformers', 'T5EncoderModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      tokenizer_2: ['transformers', 'CLIPTokenizer'],
      tokenizer_3: ['transformers', 'T5TokenizerFast'],
      transformer: ['diffusers', 'SD3Transformer2DModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    },
  },
  'flux-dev': fluxDef('flux-dev', 'black-forest-labs/FLUX.1-dev', { shift: 3.0, use_dynamic_shifting: true }),
  'flux-schnell': fluxDef('flux-schnell', 'black-forest-labs/FLUX.1-schnell', { shift: 1.0, use_dynamic_shifting: false }),
};

function fluxDef(name: 'flux-dev' | 'flux-schnell', source: string, shift: { shift: number; use_dynamic_shifting: boolean }): PipelineDef {
  return {
    name,
    source,
    denoiser: { folder: 'transformer', preset: name },
    encoders: [
      { folder: 'text_encoder', preset: 'clip-l-flux' },
      { folder: 'text_encoder_2', preset: 't5-xxl' },
    ],
    vae: 'vae-flux',
    tokenizers: [
      { folder: 'tokenizer', kind: 'clip' },
      { folder: 'tokenizer_2', kind: 't5', maxLength: 512 },
    ],
    scheduler: {
      _class_name: 'FlowMatchEulerDiscreteScheduler',
      _diffusers_version: '0.30.0.dev0',
      base_image_seq_len: 256,
      base_shift: 0.5,
      max_image_seq_len: 4096,
      max_shift: 1.15,
      num_train_timesteps: 1000,
      ...shift,
    },
    modelIndex: {
      _class_name: 'FluxPipeline',
      _diffusers_version: '0.30.0.dev0',
      scheduler: ['diffusers', 'FlowMatchEulerDiscreteScheduler'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      text_encoder_2: ['transformers', 'T5EncoderModel'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      tokenizer_2: ['transformers', 'T5TokenizerFast'],
      transformer: ['diffusers', 'FluxTransformer2DModel'],
      vae: ['diffusers', 'AutoencoderKL'],
    },
  };
}

export function getPipeline(name: string): PipelineDef {
  const def = (DEFS as Record<string, PipelineDef | undefined>)[name];
  if (!def) throw new ConfigError('UNKNOWN_PIPELINE', `--pipeline ${name}: no such pipeline (pipelines: ${PIPELINES.join(', ')})`, 'pipeline');
  return structuredClone(def);
}

const added = (content: string, type = false) => ({
  ...(type ? { __type: 'AddedToken' } : {}),
  content,
  lstrip: false,
  normalized: true,
  rstrip: false,
  single_word: false,
});

/** tokenizer_config.json and special_tokens_map.json of the released CLIP tokenizers. */
export function clipTokenizerFiles(padBang: boolean): { config: Record<string, unknown>; specialTokens: Record<string, unknown> } {
  const pad = padBang ? '!' : '<|endoftext|>';
  return {
    config: {
      add_prefix_space: false,
      bos_token: added('<|startoftext|>', true),
      clean_up_tokenization_spaces: true,
      do_lower_case: true,
      eos_token: added('<|endoftext|>', true),
      errors: 'replace',
      model_max_length: 77,
      pad_token: pad,
      tokenizer_class: 'CLIPTokenizer',
      unk_token: added('<|endoftext|>', true),
    },
    specialTokens: {
      bos_token: added('<|startoftext|>'),
      eos_token: added('<|endoftext|>'),
      pad_token: pad,
      unk_token: added('<|endoftext|>'),
    },
  };
}
