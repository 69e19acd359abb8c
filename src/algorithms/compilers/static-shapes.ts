/**
 * The sizes of the symbolic dims each component's graph sees in one generate() call, by the
 * dim names our builders emit (Optimum's exports use the same for most): what ortCompile's static
 * shapes bind at load. A size guessed wrong costs one session re-creation at the first call that
 * feeds another size (see `SessionOptions.staticShapes`), never a wrong result.
 *
 *   denoiser   batch_size (× 2 with batched CFG), steps (the UNet's timestep: one per row),
 *              height/width (latents; SD3, UNet), packed_height_width (Flux: (h/2)(w/2)),
 *              sequence_length (CLIP 77; Flux T5 tokens; SD3 77 + T5 tokens)
 *   vae        batch_size, latent_height, latent_width
 *   encoders   batch_size (one text per run: the prompt; the negative prompt runs alone), sequence_length
 */
import { FLUX_MAX_SEQUENCE_LENGTH, FluxPipeline } from '../../pipelines/flux.js';
import { tokenLength, type TextEncoderComponent } from '../../pipelines/pipeline.js';
import type { Pipeline } from '../../pipelines/registry.js';
import { SD3_DEFAULT_SEQUENCE_LENGTH, StableDiffusion3Pipeline } from '../../pipelines/stable-diffusion-3.js';

/** The generation the shapes are for; what is left out comes from the pipeline's defaults (smash.json, then diffusers'). */
export interface ShapeRequest {
  width?: number;
  height?: number;
  /** T5 tokens (Flux, SD3) */
  maxSequenceLength?: number;
  /** images per call (prompts × images per prompt; default 1) */
  batch?: number;
}

/** Per component (ONNX folder name): dim name -> size. */
export type ComponentShapes = Record<string, Record<string, number>>;

export function generationShapes(pipe: Pipeline, req: ShapeRequest = {}): ComponentShapes {
  const d = pipe.generationDefaults;
  const width = req.width ?? d.width ?? pipe.defaultSize.width;
  const height = req.height ?? d.height ?? pipe.defaultSize.height;
  const B = req.batch ?? 1;
  const h = height / pipe.vaeScale;
  const w = width / pipe.vaeScale;
  const out: ComponentShapes = { vae_decoder: { batch_size: B, latent_height: h, latent_width: w } };
  const encoder = (name: string, te: TextEncoderComponent | undefined, length: number) => {
    if (te) out[name] = { batch_size: B, sequence_length: length };
  };
  if (pipe instanceof FluxPipeline) {
    const t5 = req.maxSequenceLength ?? d.maxSequenceLength ?? FLUX_MAX_SEQUENCE_LENGTH;
    out.transformer = { batch_size: B, packed_height_width: (h / 2) * (w / 2), sequence_length: t5 };
    encoder('text_encoder', pipe.textEncoder, pipe.textEncoder ? tokenLength(pipe.textEncoder) : 77);
    encoder('text_encoder_2', pipe.textEncoder2, t5);
    return out;
  }
  // classifier-free guidance doubles the denoiser's batch when it runs batched (every default guidance here is > 1)
  const guided = (d.guidanceScale ?? 2) > 1;
  if (pipe instanceof StableDiffusion3Pipeline) {
    const t5 = req.maxSequenceLength ?? d.maxSequenceLength ?? SD3_DEFAULT_SEQUENCE_LENGTH;
    const clip = pipe.textEncoder ? tokenLength(pipe.textEncoder) : 77;
    const rows = guided && pipe.cfgMode === 'batched' ? 2 * B : B;
    out.transformer = { batch_size: rows, height: h, width: w, sequence_length: clip + t5 };
    encoder('text_encoder', pipe.textEncoder, clip);
    encoder('text_encoder_2', pipe.textEncoder2, clip);
    encoder('text_encoder_3', pipe.textEncoder3, t5);
    return out;
  }
  // StableDiffusion, SDXL and LCM (its guidance is an embedding: no CFG batch)
  const clip = pipe.textEncoder ? tokenLength(pipe.textEncoder) : 77;
  const rows = guided && pipe.timeCondDim === undefined && pipe.cfgMode === 'batched' ? 2 * B : B;
  out.unet = { batch_size: rows, steps: rows, height: h, width: w, sequence_length: clip };
  encoder('text_encoder', pipe.textEncoder, clip);
  if ('textEncoder2' in pipe) encoder('text_encoder_2', pipe.textEncoder2, clip);
  return out;
}
