/**
 * What an evaluation measures: prompts × seeds, generation settings, metrics (each with its unit
 * in its name), warm-up runs. Validated before any work, naming the option at fault.
 */
import { ConfigError } from '../errors.js';
import type { GenerateOptions } from '../pipelines/pipeline.js';

/** Speed and size of the pipeline itself. */
export const SPEED_METRICS = ['latencyMs', 'stepMs', 'throughputImagesPerS', 'coldLoadMs', 'smashMs', 'peakRssMiB', 'modelBytes'] as const;
/** Against the base pipeline's output for the same prompt, seed and initial latents. */
export const FIDELITY_METRICS = ['psnrDb', 'ssim', 'latentRelL2'] as const;
/** Need a model the user supplies: CLIP (clipScore, cmmd) or an LPIPS ONNX graph. */
export const MODEL_METRICS = ['clipScore', 'cmmd', 'lpips'] as const;
export const ALL_METRICS = [...SPEED_METRICS, ...FIDELITY_METRICS, ...MODEL_METRICS] as const;
export type MetricName = (typeof ALL_METRICS)[number];

/** Direction of a metric, for the report and the Pareto front. */
export const HIGHER_IS_BETTER: Record<MetricName, boolean> = {
  latencyMs: false, stepMs: false, throughputImagesPerS: true, coldLoadMs: false, smashMs: false, peakRssMiB: false, modelBytes: false,
  psnrDb: true, ssim: true, latentRelL2: false, clipScore: true, cmmd: false, lpips: false,
};

/** The generation settings every pipeline of an evaluation runs with. */
export type TaskGeneration = Pick<GenerateOptions, 'steps' | 'guidanceScale' | 'width' | 'height' | 'maxSequenceLength' | 'scheduler' | 'negativePrompt'>;

export interface Task {
  prompts: readonly string[];
  /** every prompt runs once with each seed */
  seeds: readonly number[];
  metrics: readonly MetricName[];
  generation: TaskGeneration;
  /** generations before the timed ones, excluded from every speed figure (default 1) */
  warmup: number;
}

export const DEFAULT_METRICS: readonly MetricName[] = [...SPEED_METRICS, ...FIDELITY_METRICS];

export function defineTask(spec: { prompts: readonly string[]; seeds?: readonly number[]; metrics?: readonly string[]; generation?: TaskGeneration; warmup?: number }): Task {
  if (!Array.isArray(spec.prompts) || !spec.prompts.length || spec.prompts.some((p) => typeof p !== 'string' || !p.trim())) {
    throw new ConfigError('TASK_PROMPTS', 'a task needs at least one non-empty prompt', 'prompts');
  }
  const seeds = spec.seeds ?? [0];
  if (!seeds.length || seeds.some((s) => !Number.isSafeInteger(s) || s < 0)) throw new ConfigError('TASK_SEEDS', `seeds are non-negative integers (got ${JSON.stringify(seeds)})`, 'seeds');
  const metrics = [...new Set(spec.metrics ?? DEFAULT_METRICS)];
  for (const m of metrics) {
    if (!(ALL_METRICS as readonly string[]).includes(m)) throw new ConfigError('UNKNOWN_METRIC', `unknown metric '${m}' (known: ${ALL_METRICS.join(', ')})`, 'metrics');
  }
  const warmup = spec.warmup ?? 1;
  if (!Number.isInteger(warmup) || warmup < 0) throw new ConfigError('TASK_WARMUP', `warmup is a non-negative integer (got ${warmup})`, 'warmup');
  return { prompts: [...spec.prompts], seeds: [...seeds], metrics: metrics as MetricName[], generation: { ...(spec.generation ?? {}) }, warmup };
}
