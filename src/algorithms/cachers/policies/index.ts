/**
 * Cache policies: the pure half of every cacher (no onnxruntime, no graph). Each decides, per
 * denoising step and guidance branch, whether the cut tensors are recomputed or reused; the
 * stateful denoiser asks, keeps the tensors, and calls `reset()` at every generation start.
 */
export * from './types.js';
export { relativeL1 } from './rel-l1.js';
export { GenerationTracker, type GenerationSignature } from './signature.js';
export { ForaPolicy, FORA_DEFAULTS, foraSchedule, type ForaConfig } from './fora.js';
export { DeepCachePolicy, DEEPCACHE_DEFAULTS, deepCacheSchedule, quadCenterSample, type DeepCacheConfig } from './deepcache.js';
export { PabPolicy, PAB_DEFAULTS, type PabConfig, type AttentionKind } from './pab.js';
export { FasterCachePolicy, FASTERCACHE_DEFAULTS, extrapolateAttention, type FasterCacheConfig } from './fastercache.js';
export { TaylorSeerPolicy, TAYLORSEER_DEFAULTS, TaylorFactors, taylorExtrapolate, taylorSeerSchedule, type TaylorSeerConfig } from './taylorseer.js';
export { FbCachePolicy, FBCACHE_DEFAULTS, type FbCacheConfig } from './fbcache.js';
export { TeaCachePolicy, TEACACHE_DEFAULTS, TEACACHE_FLUX_COEFFICIENTS, polyval, type TeaCacheConfig } from './teacache.js';
