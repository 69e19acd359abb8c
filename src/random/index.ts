/** Random-weight checkpoints in the released layouts (`smash create-random`). */
export { PRESETS, presetNames, findPreset, getPreset, presetConfig, libraryOf, type Preset, type Library } from './presets.js';
export { scaleConfig, checkScaleOptions, fitEncoders, roundTo, scaleCount, type ScaleOptions } from './scale.js';
export { generate, initFor, hashName, RANDOM_DTYPES, type Init, type RandomDType } from './init.js';
export { RandomSource, layoutOf, traceBuilder, isBuffer, type Layout, type LayoutEntry } from './layout.js';
export { PIPELINES, getPipeline, type PipelineName, type PipelineDef } from './pipelines.js';
export {
  resolveComponent,
  presetLayout,
  componentLayout,
  createRandomComponent,
  createRandomPipeline,
  pipelineSpecs,
  writeComponentFiles,
  planShards,
  parseSize,
  parseDType,
  parseSeed,
  tokenizerAssets,
  type ComponentSpec,
  type ComponentOverrides,
  type RandomWriteOptions,
  type WrittenComponent,
  type WrittenPipeline,
} from './create-random.js';
