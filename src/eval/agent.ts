/**
 * EvaluationAgent, as Pruna's: the base pipeline is evaluated first and its outputs are cached;
 * every smashed pipeline then runs the same prompts with the same seeds and the same initial
 * latents, and is compared with the cached outputs pairwise. The base never runs twice.
 */
import { ConfigError } from '../errors.js';
import { walkFiles } from '../fs/files.js';
import { encodePng, type FloatTensor } from '../pipelines/image.js';
import type { GenerateOptions, GenerateResult } from '../pipelines/pipeline.js';
import { Generator } from '../tensors/random.js';
import type { ClipModel } from './clip-model.js';
import { clipScore } from './clip-score.js';
import { cmmd } from './cmmd.js';
import type { LpipsModel } from './lpips.js';
import { psnrDb } from './metrics.js';
import { ssim } from './ssim.js';
import { mean, median, relativeL2 } from './stats.js';
import type { MetricName, Task } from './task.js';

/** What the agent needs of a pipeline (a loaded or smashed Pipeline is one). */
export interface EvaluablePipeline {
  generate(opts: GenerateOptions): Promise<GenerateResult>;
  readonly latentChannels: number;
  readonly vaeScale: number;
  readonly defaultSize: { width: number; height: number };
  generationDefaults: { width?: number; height?: number };
}

export interface EvalTarget {
  name: string;
  pipe: EvaluablePipeline;
  /** time the load took (cold: first load in this process), for coldLoadMs */
  loadMs?: number;
  /** one-time cost of smash() (rewriting graphs, creating sessions), for smashMs */
  smashMs?: number;
  /** the folder whose files are the model on disk, for modelBytes */
  modelDir?: string;
}

export interface SampleResult {
  prompt: string;
  seed: number;
  /** the picture as PNG, for reports */
  png: Buffer;
  latencyMs: number;
  /** pairwise figures against the base (absent for the base itself) */
  psnrDb?: number;
  ssim?: number;
  latentRelL2?: number;
  lpips?: number;
}

export interface EvaluationResult {
  name: string;
  isBase: boolean;
  metrics: Partial<Record<MetricName, number>>;
  samples: SampleResult[];
}

export interface AgentOptions {
  /** milliseconds; a test gives a fake clock */
  clock?: () => number;
  /** resident memory in bytes (default process.memoryUsage.rss) */
  rss?: () => number;
  clip?: ClipModel;
  lpips?: LpipsModel;
  onProgress?: (name: string, done: number, total: number) => void;
}

interface BaseSample {
  prompt: string;
  seed: number;
  images: FloatTensor;
  latents: FloatTensor;
}

export class EvaluationAgent {
  private base?: { result: EvaluationResult; samples: BaseSample[]; embeds?: Float32Array[] };
  private readonly clock: () => number;
  private readonly rss: () => number;

  constructor(readonly task: Task, private readonly opts: AgentOptions = {}) {
    this.clock = opts.clock ?? (() => performance.now());
    this.rss = opts.rss ?? (() => process.memoryUsage.rss());
    const needs = (m: MetricName) => task.metrics.includes(m);
    if ((needs('clipScore') || needs('cmmd')) && !opts.clip) {
      throw new ConfigError('CLIP_MODEL_MISSING', `metrics ${task.metrics.filter((m) => m === 'clipScore' || m === 'cmmd').join(' and ')} need a CLIP model: give a Hugging Face CLIP folder (e.g. a local copy of openai/clip-vit-large-patch14) as --clip <dir>`, 'clip');
    }
    if (needs('clipScore') && opts.clip && !opts.clip.hasText) {
      throw new ConfigError('CLIP_TEXT_MISSING', `clipScore needs a CLIP model with a text tower ('${opts.clip.name}' has images only): give a full CLIPModel folder`, 'clip');
    }
    if (needs('lpips') && !opts.lpips) {
      throw new ConfigError('LPIPS_MODEL_MISSING', 'metric lpips needs an LPIPS ONNX model (two [N,3,H,W] inputs in [-1, 1], one distance per pair): give it as --lpips <model.onnx>', 'lpips');
    }
  }

  get hasBase(): boolean {
    return this.base !== undefined;
  }

  /** Evaluates the base pipeline and caches its outputs for the pairwise comparisons. */
  async evaluateBase(target: EvalTarget): Promise<EvaluationResult> {
    const samples: BaseSample[] = [];
    const result = await this.run(target, true, async (s) => {
      samples.push({ prompt: s.prompt, seed: s.seed, images: s.out.images, latents: s.out.latents });
      return {};
    });
    const embeds = await this.addModelMetrics(result, samples.map((s) => s.images), undefined);
    this.base = { result, samples, embeds };
    return result;
  }

  /** Evaluates a (smashed) pipeline against the cached base outputs. */
  async evaluate(target: EvalTarget): Promise<EvaluationResult> {
    const base = this.base;
    if (!base) throw new ConfigError('NO_BASE', 'evaluate the base pipeline first (evaluateBase): smashed pipelines are compared with its outputs', 'base');
    const images: FloatTensor[] = [];
    let k = 0;
    const result = await this.run(target, false, async (s) => {
      const ref = base.samples[k++]!;
      images.push(s.out.images);
      const [, c, h, w] = s.out.images.dims as [number, number, number, number];
      const pair: Partial<SampleResult> = {
        psnrDb: psnrDb(s.out.images.data, ref.images.data),
        latentRelL2: relativeL2(s.out.latents.data, ref.latents.data),
      };
      if (h >= 11 && w >= 11) pair.ssim = ssim(s.out.images.data, ref.images.data, { channels: c, height: h, width: w });
      if (this.opts.lpips && this.task.metrics.includes('lpips')) pair.lpips = (await this.opts.lpips.distances(s.out.images.data, ref.images.data, s.out.images.dims))[0];
      return pair;
    });
    const want = (m: MetricName) => this.task.metrics.includes(m);
    const avg = (key: 'psnrDb' | 'ssim' | 'latentRelL2' | 'lpips') => {
      const v = result.samples.map((s) => s[key]).filter((x): x is number => x !== undefined);
      // identical pictures have an infinite PSNR: the mean MSE is what averages, as Pruna's PSNR over a batch
      if (key === 'psnrDb') return v.every((x) => x === Infinity) ? Infinity : -10 * Math.log10(mean(v.map((x) => 10 ** (-x / 10))));
      return v.length ? mean(v) : undefined;
    };
    for (const key of ['psnrDb', 'ssim', 'latentRelL2', 'lpips'] as const) {
      const v = want(key) ? avg(key) : undefined;
      if (v !== undefined) result.metrics[key] = v;
    }
    await this.addModelMetrics(result, images, base.embeds);
    return result;
  }

  /** CLIP score against the prompts, CMMD against the base's image embeddings. */
  private async addModelMetrics(result: EvaluationResult, images: FloatTensor[], baseEmbeds: Float32Array[] | undefined): Promise<Float32Array[] | undefined> {
    const clip = this.opts.clip;
    const want = (m: MetricName) => this.task.metrics.includes(m);
    if (!clip || !(want('clipScore') || want('cmmd'))) return undefined;
    const embeds: Float32Array[] = [];
    for (const im of images) embeds.push(...(await clip.embedImages(im.data, im.dims)));
    if (want('clipScore')) result.metrics.clipScore = clipScore(embeds, await clip.embedTexts(result.samples.map((s) => s.prompt)));
    if (want('cmmd')) result.metrics.cmmd = baseEmbeds ? cmmd(baseEmbeds, embeds) : 0;
    return embeds;
  }

  /** The warm-up, then every prompt × seed once, timed; `compare` adds the pairwise figures. */
  private async run(target: EvalTarget, isBase: boolean, compare: (s: { prompt: string; seed: number; out: GenerateResult }) => Promise<Partial<SampleResult>>): Promise<EvaluationResult> {
    const t = this.task;
    const pipe = target.pipe;
    const width = t.generation.width ?? pipe.generationDefaults.width ?? pipe.defaultSize.width;
    const height = t.generation.height ?? pipe.generationDefaults.height ?? pipe.defaultSize.height;
    let peak = this.rss();
    const sampleRss = () => { peak = Math.max(peak, this.rss()); };
    const options = (prompt: string, seed: number): GenerateOptions => ({
      ...t.generation,
      width,
      height,
      prompt,
      seed,
      numImagesPerPrompt: 1,
      latents: initialLatents(seed, pipe.latentChannels, height / pipe.vaeScale, width / pipe.vaeScale),
      onStep: sampleRss,
    });
    const jobs = t.prompts.flatMap((prompt) => t.seeds.map((seed) => ({ prompt, seed })));
    const total = t.warmup + jobs.length;
    let done = 0;
    this.opts.onProgress?.(target.name, done, total);
    for (let i = 0; i < t.warmup; i++) {
      await pipe.generate(options(jobs[0]!.prompt, jobs[0]!.seed));
      this.opts.onProgress?.(target.name, ++done, total);
    }
    const samples: SampleResult[] = [];
    const latencies: number[] = [];
    const steps: number[] = [];
    for (const job of jobs) {
      const t0 = this.clock();
      const out = await pipe.generate(options(job.prompt, job.seed));
      const ms = this.clock() - t0;
      sampleRss();
      latencies.push(ms);
      steps.push(...out.timings.stepsMs);
      const pair = await compare({ ...job, out });
      samples.push({ prompt: job.prompt, seed: job.seed, png: encodePng(out.images, 0), latencyMs: ms, ...pair });
      this.opts.onProgress?.(target.name, ++done, total);
    }
    const want = (m: MetricName) => t.metrics.includes(m);
    const metrics: Partial<Record<MetricName, number>> = {};
    if (want('latencyMs')) metrics.latencyMs = median(latencies);
    if (want('stepMs') && steps.length) metrics.stepMs = median(steps);
    if (want('throughputImagesPerS')) metrics.throughputImagesPerS = latencies.length / (latencies.reduce((a, b) => a + b, 0) / 1000);
    if (want('coldLoadMs') && target.loadMs !== undefined) metrics.coldLoadMs = target.loadMs;
    if (want('smashMs')) metrics.smashMs = target.smashMs ?? 0;
    if (want('peakRssMiB')) metrics.peakRssMiB = peak / 2 ** 20;
    if (want('modelBytes') && target.modelDir) metrics.modelBytes = walkFiles(target.modelDir).reduce((a, f) => a + f.size, 0);
    return { name: target.name, isBase, metrics, samples };
  }
}

/** The initial noise of one seed: [1, C, h, w] standard normal from our seeded generator. */
export function initialLatents(seed: number, channels: number, h: number, w: number): FloatTensor {
  return { dims: [1, channels, h, w], data: new Generator(seed).randn(channels * h * w) };
}
