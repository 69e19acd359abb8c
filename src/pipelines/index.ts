/** Text-to-image pipelines: loading, generation, image and tensor I/O. */
export { loadPipeline, inspectPipelineFolder, type LoadPipelineOptions, type Pipeline } from './loader.js';
export { cacheKey, cacheRoot, ensureConverted, packageVersion } from './cache.js';
export { downloadPipeline, hubCacheDir, isRepoId, type HubOptions } from './hub.js';
export { clearCache, listCache, type CacheEntry, type ClearOptions } from './cache-admin.js';
export {
  DiffusionPipeline,
  type FloatTensor, type GenerateOptions, type GenerateResult, type GenerationSettings, type PlanBase, type StepInfo, type Timings,
} from './pipeline.js';
export {
  SessionDenoiser, StatefulDenoiser, sameSignature,
  type Branch, type CfgMode, type DenoiseContext, type Denoiser, type DenoiserFeeds, type GenerationSignature, type Prediction, type PredictRequest,
} from './denoiser.js';
export type { ComponentRole, PipelineComponent, LoadedComponents, PipelineDescription } from './description.js';
export { PIPELINE_DESCRIPTIONS } from './registry.js';
export { StableDiffusionPipeline } from './stable-diffusion.js';
export { StableDiffusionXLPipeline } from './stable-diffusion-xl.js';
export { StableDiffusion3Pipeline } from './stable-diffusion-3.js';
export { LatentConsistencyModelPipeline } from './latent-consistency.js';
export { FluxPipeline, packLatents, unpackLatents, latentImageIds } from './flux.js';
export { denormalize, encodePng, readPng, writePng } from './image.js';
export { readLatentsFile, readPromptEmbedsFile, readTensorsFile, writeTensorsFile } from './embeddings-io.js';
