import { existsSync, mkdirSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isProvider, PROVIDERS, type ProviderName } from '../../runtime/providers.js';
import { peakRssBytes } from '../../runtime/memory.js';
import { atomicWrite } from '../../tensors/atomic.js';
import { packageVersion } from '../../pipelines/cache.js';
import { readLatentsFile, readPromptEmbedsFile, writeTensorsFile } from '../../pipelines/embeddings-io.js';
import { readPng, writePng } from '../../pipelines/image.js';
import { readGenerationDefaults } from '../../pipelines/defaults.js';
import { checkGenerationMemory, checkSide } from '../../pipelines/limits.js';
import { inspectPipelineFolder } from '../../pipelines/loader.js';
import { downloadPipeline, isRepoId } from '../../pipelines/hub.js';
import { smashConfigOption, WITH_HELP } from '../smash-config.js';
import { loadPipeline, smash } from '../../smash/smash.js';
import type { GenerateOptions } from '../../pipelines/pipeline.js';
import { gatherPrompts } from '../prompts.js';
import { progressBars } from '../progress.js';
import { warner } from '../warnings.js';

interface GenerateCliOptions {
  model: string;
  prompt?: string[];
  promptFile?: string[];
  negativePrompt?: string[];
  negativePromptFile?: string[];
  steps?: string;
  guidance?: string;
  width?: string;
  height?: string;
  seed?: string;
  numImages?: string;
  scheduler?: string;
  maxSequenceLength?: string;
  out: string;
  latents?: string;
  image?: string;
  strength?: string;
  promptEmbeds?: string;
  report?: string;
  lowMemory?: boolean;
  vaeTiling?: true | string;
  force?: boolean;
  config?: string;
  with?: string[];
  provider: string;
  threads?: string;
  variant?: string;
  revision?: string;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

function int(flag: string, key: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw new ConfigError('BAD_OPTION', `--${flag} must be an integer, got '${v}'`, key);
  return Number(v);
}

function num(flag: string, key: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new ConfigError('BAD_OPTION', `--${flag} must be a number, got '${v}'`, key);
  return x;
}

/** The files `--out` names for `count` images; fails on an unknown extension. */
export function outputFiles(out: string, count: number): { kind: 'safetensors' | 'png'; files: string[] } {
  const ext = extname(out).toLowerCase();
  if (ext === '.safetensors') return { kind: 'safetensors', files: [out] };
  if (ext === '.png') {
    if (count === 1) return { kind: 'png', files: [out] };
    const stem = out.slice(0, -ext.length);
    return { kind: 'png', files: Array.from({ length: count }, (_, i) => `${stem}-${i}.png`) };
  }
  const isDir = out.endsWith('/') || out.endsWith('\\') || ext === '' || (existsSync(out) && statSync(out).isDirectory());
  if (!isDir) throw new ConfigError('BAD_OUTPUT', `--out ${out}: expected a .png or .safetensors file, or a folder`, 'out');
  return { kind: 'png', files: Array.from({ length: count }, (_, i) => join(out, `image-${i}.png`)) };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);

export function registerGenerate(p: Command) {
  p.command('generate')
    .description('generate images from a prompt with a diffusers pipeline folder or its ONNX conversion')
    .requiredOption('--model <dir>', 'pipeline folder (diffusers, converted on first use and cached; or ONNX in Optimum\'s layout)')
    .option('--prompt <text>', 'the prompt (repeat for a batch)', collect)
    .option('--prompt-file <file>', 'read a prompt from a file (UTF-8, one prompt per file; repeat for a batch): for long prompts', collect)
    .option('--negative-prompt <text>', 'negative prompt, Stable Diffusion only (repeat to match --prompt)', collect)
    .option('--negative-prompt-file <file>', 'read a negative prompt from a file', collect)
    .option('--steps <n>', 'denoising steps (default: 50 SD, 28 Flux)')
    .option('--guidance <scale>', 'guidance scale (SD: classifier-free, on above 1; Flux dev: guidance embedding)')
    .option('--width <px>', 'image width')
    .option('--height <px>', 'image height')
    .option('--seed <n>', 'seed of the initial noise (random when omitted; printed)')
    .option('--num-images <n>', 'images per prompt', '1')
    .option('--scheduler <name|file>', 'scheduler class (over the pipeline\'s config) or a scheduler_config.json')
    .option('--max-sequence-length <n>', 'Flux: T5 tokens (default 512, or the folder\'s smash.json)')
    .requiredOption('--out <path>', 'file.png, file.safetensors (output.image, output.latents) or a folder (image-0.png, ...)')
    .option('--image <file.png>', 'image-to-image: the starting picture (its size is the default --width/--height)')
    .option('--strength <x>', 'image-to-image: how much of the schedule runs, in (0, 1] (default: 0.8 SD, 0.3 SDXL, 0.6 SD3 and Flux)')
    .option('--latents <file>', 'safetensors with the initial noise (key latents, input.latents or trace.latents; unpacked NCHW)')
    .option('--prompt-embeds <file>', 'safetensors with prompt_embeds (+ negative_prompt_embeds, pooled_prompt_embeds), bare or input./trace. prefixed')
    .option('--report <file>', 'write a JSON report: settings, timings, peak RSS')
    .option('--force', 'overwrite existing output files')
    .option('--provider <name>', `execution provider: ${PROVIDERS.join(', ')}`, 'cpu')
    .option('--threads <n>', 'intra-op threads (default: onnxruntime\'s)')
    .option('--revision <rev>', 'for a Hub repository id (owner/repo): branch, tag or commit (default main)')
    .option('--variant <name>', 'checkpoint variant of a diffusers folder, e.g. fp16 for *.fp16.safetensors (default: the only one present, else none)')
    .option('--low-memory', 'create each component\'s session only for its stage (text encode, denoise, decode), under glibc settings that return freed memory: peak memory is the largest component, at the price of creating the sessions on every run')
    .option('--vae-tiling [px]', 'decode the latents tile by tile (diffusers\' vae.enable_tiling()): tiles of px pixels (default: the VAE\'s sample_size) overlapping by a quarter; bounds the decode\'s memory by the tile, changes the picture slightly')
    .option('--config <smash.json>', 'smash the pipeline in memory with this SmashConfig before generating')
    .option('--with <algorithms...>', WITH_HELP)
    .action(async (o: GenerateCliOptions) => {
      await runGenerate(o);
    });
}

async function runGenerate(o: GenerateCliOptions): Promise<void> {
  if (!isProvider(o.provider)) throw new ConfigError('PROVIDER', `--provider ${o.provider} is not known (${PROVIDERS.join(', ')})`, 'provider');
  const gen: GenerateOptions = {
    steps: int('steps', 'steps', o.steps),
    guidanceScale: num('guidance', 'guidanceScale', o.guidance),
    width: int('width', 'width', o.width),
    height: int('height', 'height', o.height),
    seed: int('seed', 'seed', o.seed),
    numImagesPerPrompt: int('num-images', 'numImagesPerPrompt', o.numImages),
    maxSequenceLength: int('max-sequence-length', 'maxSequenceLength', o.maxSequenceLength),
    scheduler: o.scheduler,
  };
  if (o.vaeTiling !== undefined) {
    gen.vaeTiling = o.vaeTiling === true ? true : { tileSampleSize: int('vae-tiling', 'vaeTiling.tileSampleSize', o.vaeTiling) };
  }
  const threads = int('threads', 'threads', o.threads);
  const prompts = gatherPrompts('prompt', 'prompt', o.prompt, o.promptFile);
  const negatives = gatherPrompts('negative-prompt', 'negativePrompt', o.negativePrompt, o.negativePromptFile);
  if (prompts) gen.prompt = prompts.length === 1 ? prompts[0] : prompts;
  if (negatives) gen.negativePrompt = negatives.length === 1 ? negatives[0] : negatives;
  if (o.latents) gen.latents = readLatentsFile(o.latents);
  if (o.strength !== undefined && o.image === undefined) throw new ConfigError('BAD_OPTION', '--strength needs --image', 'strength');
  if (o.image !== undefined) {
    try {
      gen.image = readPng(o.image);
    } catch (e) {
      throw new ConfigError('BAD_IMAGE', `--image ${o.image}: cannot read a PNG (${(e as Error).message})`, 'image');
    }
    gen.strength = num('strength', 'strength', o.strength);
  }
  if (o.promptEmbeds) {
    const e = readPromptEmbedsFile(o.promptEmbeds);
    gen.promptEmbeds = e.promptEmbeds;
    if (e.negativePromptEmbeds) gen.negativePromptEmbeds = e.negativePromptEmbeds;
    if (e.pooledPromptEmbeds) gen.pooledPromptEmbeds = e.pooledPromptEmbeds;
  }
  // an empty prompt is legitimate (unconditional generation)
  if (gen.prompt === undefined && !gen.promptEmbeds) throw new ConfigError('MISSING_OPTION', 'give --prompt, --prompt-file or --prompt-embeds', 'prompt');
  // the checks that need no model run here, so they fail before a (slow) load
  if (gen.prompt !== undefined && gen.promptEmbeds) throw new ConfigError('BAD_OPTION', 'give either --prompt or --prompt-embeds, not both', 'prompt');
  if (gen.steps !== undefined && gen.steps < 1) throw new ConfigError('BAD_OPTION', `--steps must be at least 1, got ${gen.steps}`, 'steps');
  if (gen.guidanceScale !== undefined && gen.guidanceScale < 0) throw new ConfigError('BAD_OPTION', `--guidance must be >= 0, got ${gen.guidanceScale}`, 'guidanceScale');
  if (gen.numImagesPerPrompt !== undefined && gen.numImagesPerPrompt < 1) throw new ConfigError('BAD_OPTION', `--num-images must be at least 1, got ${gen.numImagesPerPrompt}`, 'numImagesPerPrompt');

  // outputs are decided (and existing files refused) before anything is computed
  const batch = gen.promptEmbeds ? gen.promptEmbeds.dims[0]! : Array.isArray(gen.prompt) ? gen.prompt.length : 1;
  const count = batch * (gen.numImagesPerPrompt ?? 1);
  const outs = outputFiles(o.out, count);
  const targets = o.report ? [...outs.files, o.report] : outs.files;
  if (!o.force) {
    const taken = targets.filter((f) => existsSync(f));
    if (taken.length) throw new ConfigError('OUT_EXISTS', `${taken.join(', ')} exists (use --force to overwrite)`, 'out');
  }
  // an invalid SmashConfig fails before any work
  const smashConfig = smashConfigOption(o);
  // a Hub repository id: its files into the Hub cache first (resumed, or found there)
  if (isRepoId(o.model) && !existsSync(o.model)) {
    const dl = progressBars();
    try {
      o.model = await downloadPipeline(o.model, { revision: o.revision, variant: o.variant, onWarning: warner(), onProgress: (f, d, t) => dl.update(`download ${f}`, d, t, 'bytes') });
    } finally {
      dl.stop();
    }
  } else if (o.revision !== undefined) throw new ConfigError('BAD_OPTION', `--revision applies to Hub repository ids (owner/repo); ${o.model} is a local folder`, 'revision');
  // size checks need only the configs: fail before a first-load conversion
  const folder = inspectPipelineFolder(o.model);
  const multiple = folder.sizeMultiple;
  for (const k of ['width', 'height'] as const) {
    const v = gen[k];
    if (v !== undefined && (v < multiple || v % multiple !== 0)) {
      throw new ConfigError('BAD_SIZE', `--${k} ${v} must be a positive multiple of ${multiple} (the VAE factor of this ${folder.index.className})`, k);
    }
  }
  // sizes and memory are checked from the configs too, before any allocation
  const sample = folder.index.className === 'FluxPipeline' ? 64 : Number(folder.denoiserConfig.sample_size ?? 64);
  const defaults = readGenerationDefaults(folder.root);
  const side = (k: 'width' | 'height') => gen[k] ?? gen.image?.dims[k === 'width' ? 3 : 2] ?? defaults[k] ?? sample * multiple;
  for (const k of ['width', 'height'] as const) checkSide(k, side(k), gen[k] === undefined ? `the default: the denoiser's sample_size ${sample} × ${multiple}` : '');
  checkGenerationMemory(count, side('width'), side('height'), folder.vaeConfig);

  const bars = progressBars();
  const warn = warner();
  try {
    const tLoad = performance.now();
    const loadOpts = { provider: o.provider as ProviderName, threads, onWarning: warn, lowMemory: !!o.lowMemory };
    const loaded = await loadPipeline(o.model, { ...loadOpts, variant: o.variant, onConvertProgress: (c, d, t) => bars.update(`convert ${c}`, d, t, 'tensors') });
    let pipe = loaded;
    if (smashConfig) {
      pipe = await smash(loaded, smashConfig, loadOpts);
      pipe.generationDefaults = loaded.generationDefaults;
      await loaded.release();
    }
    // loading, conversion and smashing: the one-time cost, apart from generation
    const loadMs = performance.now() - tLoad;
    try {
      // PNDM and others call the denoiser more often than the steps asked for: say so
      const unit = (n: number) => (gen.steps === undefined || n === gen.steps ? 'steps' : `denoiser calls (${gen.steps} steps)`);
      const r = await pipe.generate({ ...gen, onStep: (s) => bars.update('denoise', s.stepIndex + 1, s.numSteps, unit(s.numSteps)) });
      bars.stop();
      for (const f of outs.files) mkdirSync(dirname(resolve(f)), { recursive: true });
      if (outs.kind === 'safetensors') {
        writeTensorsFile(outs.files[0]!, { 'output.image': r.images, 'output.latents': r.latents }, { settings: JSON.stringify(r.settings) });
      } else {
        outs.files.forEach((f, i) => writePng(f, r.images, i));
      }
      const peak = peakRssBytes();
      if (o.report) {
        const report = {
          settings: {
            ...r.settings,
            // a Flux transformer without a guidance input (schnell) ignores the scale
            guidanceScale: 'hasGuidance' in pipe && !pipe.hasGuidance ? null : r.settings.guidanceScale,
            model: resolve(o.model),
            modelCacheKey: pipe.source.cacheKey ?? null,
            provider: o.provider,
            latentsFile: o.latents ? resolve(o.latents) : null,
            promptEmbedsFile: o.promptEmbeds ? resolve(o.promptEmbeds) : null,
            smashVersion: packageVersion(),
            smash: 'smashConfig' in pipe ? pipe.smashConfig.toJSON() : null,
          },
          outputs: outs.files.map((f) => resolve(f)),
          timings: { loadMs, ...r.timings },
          conversionCache: pipe.source.cacheKey ? { key: pipe.source.cacheKey, hit: pipe.source.converted === false, dir: pipe.source.onnxDir } : null,
          // a cacher's decisions: per step and branch, the parts computed and reused
          cache: r.cache ?? null,
          peakRssBytes: peak,
          lowMemory: !!o.lowMemory,
        };
        mkdirSync(dirname(resolve(o.report)), { recursive: true });
        const bytes = Buffer.from(`${JSON.stringify(report, null, 2)}\n`);
        atomicWrite(o.report, (fd) => {
          let done = 0;
          while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
        });
      }
      const calls = r.timings.stepsMs.length;
      const steps = r.settings.steps;
      const perStep = calls ? r.timings.denoiseMs / calls / 1000 : 0;
      const where = outs.files.length === 1 ? outs.files[0] : `${outs.files.length} files (${basename(outs.files[0]!)} …)`;
      process.stdout.write(
        `wrote ${where}: ${count} image${count > 1 ? 's' : ''} ${r.settings.width}×${r.settings.height}, seed ${r.seed}; ` +
          `${steps} steps${calls !== steps ? ` (${calls} denoiser calls)` : ''} at ${perStep.toFixed(3)} s/${calls !== steps ? 'call' : 'step'}, ` +
          `load ${(loadMs / 1000).toFixed(2)} s${pipe.source.cacheKey ? (pipe.source.converted ? ' (converted)' : ' (cached)') : ''}, total ${(r.timings.totalMs / 1000).toFixed(2)} s ` +
          `(text ${(r.timings.textEncodeMs / 1000).toFixed(2)} s, denoise ${(r.timings.denoiseMs / 1000).toFixed(2)} s, decode ${(r.timings.decodeMs / 1000).toFixed(2)} s); ` +
          `peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB (text ${mib(r.timings.peakRssBytes.textEncode)}, denoise ${mib(r.timings.peakRssBytes.denoise)}, decode ${mib(r.timings.peakRssBytes.decode)} MiB)${o.lowMemory ? ', low memory' : ''}\n`,
      );
    } finally {
      await pipe.release();
    }
  } finally {
    bars.stop();
  }
}
