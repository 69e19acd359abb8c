/** The pipeline classes loadPipeline knows, by model_index.json `_class_name`. A new pipeline: its file, then one entry here. */
import type { PipelineDescription } from './description.js';
import { FluxPipeline } from './flux.js';
import { LatentConsistencyModelPipeline } from './latent-consistency.js';
import { StableDiffusionPipeline } from './stable-diffusion.js';
import { StableDiffusion3Pipeline } from './stable-diffusion-3.js';
import { StableDiffusionXLPipeline } from './stable-diffusion-xl.js';

export type Pipeline = StableDiffusionPipeline | StableDiffusionXLPipeline | StableDiffusion3Pipeline | FluxPipeline;

/** In this order an ONNX folder without model_index.json is recognised by its denoiser folder. */
export const PIPELINE_DESCRIPTIONS: readonly PipelineDescription<Pipeline>[] = [
  FluxPipeline.description, StableDiffusionPipeline.description, StableDiffusionXLPipeline.description, StableDiffusion3Pipeline.description,
  LatentConsistencyModelPipeline.description,
];
