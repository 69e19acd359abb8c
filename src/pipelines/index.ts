/** Text-to-image pipelines: loading, generation, image and tensor I/O. */
export { loadPipeline, inspectPipelineFolder, type LoadPipelineOptions, type Pipeline } from './loader.js';
export { cacheKey, cacheRoot, ensureConverted, packageVersion } from './cache.js';
export { clearCache, listCache, type CacheEntry, type ClearOptions } from './cache-admin.js';
export {
  DiffusionPipeline, SessionDenoiser,
  type Branch, type DenoiseContext, type Denoiser, type FloatTensor, type GenerateOptions, type GenerateResult,
  type GenerationSettings, type StepInfo, type Timings,
} from './pipeline.js';
export { StableDiffusionPipeline } from './stable-diffusion.js';
export { FluxPipeline, packLatents, unpackLatents, latentImageIds } from './flux.js';
export { denormalize, encodePng, readPng, writePng } from './image.js';
export { readLatentsFile, readPromptEmbedsFile, readTensorsFile, writeTensorsFile } from './embeddings-io.js';
