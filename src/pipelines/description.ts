/**
 * Pipelines described as data: each pipeline class declares its components (model_index.json
 * name, role, ONNX folder and IO), how its configs must agree, and how to build it from loaded
 * components. The loader reads these and has no per-pipeline branches: a new pipeline is one
 * file with a description plus its registry entry (registry.ts).
 */
import { ConfigError } from '../errors.js';
import type { Session } from '../runtime/session.js';
import type { Denoiser } from './denoiser.js';
import type { PipelineSource, SchedulerSpec, TextEncoderComponent, VaeDecoderComponent } from './pipeline.js';

export type ComponentRole = 'denoiser' | 'vae_decoder' | 'text_encoder';

export interface PipelineComponent {
  /** the model_index.json key, e.g. `unet`, `text_encoder_2` */
  name: string;
  role: ComponentRole;
  /** the folder of its model.onnx in Optimum's layout (`vae` -> `vae_decoder`) */
  onnx: string;
  /** a pipeline without it cannot load (text encoders are optional: embeddings can be given) */
  required: boolean;
  /** text encoders: the tokenizer component */
  tokenizer?: string;
  /** graph inputs the pipeline feeds (all must be present) */
  inputs: readonly string[];
  /** graph inputs the pipeline may feed when the graph has them (Flux `guidance`, LCM `timestep_cond`) */
  optionalInputs?: readonly string[];
  /** graph outputs it reads; a denoiser's prediction is the first present (else the graph's first output) */
  outputs: readonly string[];
  /** graph inputs that mean another pipeline class, with why (an SDXL UNet's `text_embeds`) */
  foreignInputs?: Readonly<Record<string, string>>;
}

/** What the loader hands a pipeline's constructor. */
export interface LoadedComponents {
  denoiser: Denoiser;
  /** the denoiser's config.json */
  denoiserConfig: Record<string, unknown>;
  vae: VaeDecoderComponent;
  /** text encoders present with their tokenizers, by component name */
  textEncoders: ReadonlyMap<string, TextEncoderComponent>;
}

/** Component configs (config.json) by component name, for the cross-checks. */
export type ComponentConfigs = ReadonlyMap<string, Record<string, unknown>>;

export interface PipelineDescription<T = object> {
  /** model_index.json's `_class_name` */
  className: string;
  components: readonly PipelineComponent[];
  /** image sizes are multiples of the VAE downsampling times this (Flux packs 2×2 latent patches) */
  patchSize: number;
  /**
   * Checks that the configs agree (text encoder widths against the denoiser; the loader checks the
   * VAE's latent channels × patchSize² against the denoiser's in_channels);
   * throws ConfigError naming the component. `classes`: component classes from model_index.json.
   */
  checkConfigs(configs: ComponentConfigs, classes: ReadonlyMap<string, string | null>): void;
  create(source: PipelineSource, scheduler: SchedulerSpec, components: LoadedComponents, sessions: Session[], onWarning: (m: string) => void): T;
}

/** The one component of a role (the denoiser, the VAE decoder). */
export function componentOf(d: PipelineDescription, role: 'denoiser' | 'vae_decoder'): PipelineComponent {
  return d.components.find((c) => c.role === role)!;
}

/** The width of a text encoder's output: CLIP hidden_size, T5 d_model. */
export function encoderWidth(cfg: Record<string, unknown> | undefined): number | undefined {
  if (!cfg) return undefined;
  const v = cfg.hidden_size ?? cfg.d_model ?? (cfg.text_config as Record<string, unknown> | undefined)?.hidden_size;
  return typeof v === 'number' ? v : undefined;
}

export function mismatch(name: string, msg: string): ConfigError {
  return new ConfigError('COMPONENT_MISMATCH', `${name}: ${msg}`, name);
}

/** The VAE's latent_channels × patchSize² (packed patches) must be the denoiser's in_channels. */
export function checkLatentChannels(d: PipelineDescription, configs: ComponentConfigs): void {
  const den = componentOf(d, 'denoiser');
  const vae = componentOf(d, 'vae_decoder');
  const lc = configs.get(vae.name)?.latent_channels;
  const inCh = configs.get(den.name)?.in_channels;
  const k = d.patchSize ** 2;
  if (typeof lc === 'number' && typeof inCh === 'number' && lc * k !== inCh) {
    const packing = k > 1 ? ` × ${k} (${d.patchSize}×${d.patchSize} packing)` : '';
    throw mismatch(vae.name, `latent_channels ${lc}${packing} does not match the ${den.name}'s in_channels ${inCh}`);
  }
}
