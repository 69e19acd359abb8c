/**
 * Writing random-weight checkpoints in the released layouts: one component (config.json +
 * safetensors, sharded above a size as Hugging Face does) or a whole pipeline folder.
 */
import { ModelConfig } from '../models/config.js';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, ModelFormatError } from '../errors.js';
import { writeOutputFolder } from '../fs/output.js';
import { architectureFor, supportedArchitectures } from '../models/registry.js';
import '../models/architectures.js';
import { writeSafetensors } from '../tensors/safetensors.js';
import { configText } from './config-json.js';
import { RANDOM_DTYPES, type RandomDType } from './init.js';
import { summarize, traceBuilder, type Layout, type LayoutEntry } from './layout.js';
import { clipTokenizerFiles, getPipeline, type PipelineName, type TokenizerKind } from './pipelines.js';
import { findPreset, getPreset, libraryOf, presetNames, type Library } from './presets.js';
import { checkScaleOptions, fitEncoders, isScaled, scaleConfig, type ScaleOptions } from './scale.js';

export interface ComponentSpec {
  className: string;
  config: Record<string, unknown>;
  /** preset name or config file, for messages */
  label: string;
}

export interface RandomWriteOptions {
  /** default 0; any integer in ±2^53 */
  seed?: number;
  /** default float32 */
  dtype?: RandomDType;
  /**
   * shard above this many bytes (default as save_pretrained: 10 GB for diffusers classes, 5 GB
   * for transformers classes; 1 GB = 10^9 bytes)
   */
  shardSize?: number;
  /** replace a non-empty output folder */
  force?: boolean;
  /** tensors written so far out of the component's total */
  onProgress?: (component: string, done: number, total: number) => void;
}

export interface WrittenComponent {
  folder: string;
  className: string;
  files: string[];
  layout: Layout;
}

// ---------------------------------------------------------------- specs


function classOf(config: Record<string, unknown>): string | undefined {
  const c = config._class_name ?? (Array.isArray(config.architectures) ? config.architectures[0] : undefined);
  return typeof c === 'string' ? c : undefined;
}

/** The encoder configs (scaled like the denoiser) that a denoiser preset's conditioning follows. */
function scaledEncoderConfigs(presetName: string, className: string, scale: ScaleOptions, encoderPresets?: string[]) {
  const preset = getPreset(presetName);
  const names = encoderPresets ?? [...(preset.encoders ?? [])];
  const original = names.map((n) => structuredClone(getPreset(n).config) as Record<string, unknown>);
  const configs = names.map((n, i) => scaleConfig(getPreset(n).className, original[i]!, scale));
  fitEncoders(className, configs);
  return { original, configs };
}

/**
 * Resolves `--class` / `--config` (a preset name or a config.json path) and the scaling into the
 * config to write. `--class` must agree with the preset's or file's class; a file without a class
 * takes `--class`.
 */
export function resolveComponent(opts: { className?: string; config: string | Record<string, unknown> } & ScaleOptions): ComponentSpec {
  checkScaleOptions(opts);
  const scale: ScaleOptions = { widthMult: opts.widthMult, depth: opts.depth };
  let config: Record<string, unknown>;
  let label: string;
  let presetName: string | undefined;
  if (typeof opts.config !== 'string') {
    config = structuredClone(opts.config);
    label = '<config>';
  } else if (findPreset(opts.config) && !/[\\/]|\.json$/i.test(opts.config)) {
    presetName = opts.config;
    config = structuredClone(getPreset(presetName).config) as Record<string, unknown>;
    label = `preset ${presetName}`;
  } else if (existsSync(opts.config) && statSync(opts.config).isFile()) {
    config = ModelConfig.load(opts.config).raw;
    label = opts.config;
  } else if (existsSync(join(opts.config, 'config.json'))) {
    config = ModelConfig.load(opts.config).raw;
    label = join(opts.config, 'config.json');
  } else {
    throw new ConfigError('UNKNOWN_PRESET', `--config ${opts.config}: no such preset or config file (presets: ${presetNames().join(', ')})`, 'config');
  }
  const own = classOf(config);
  if (opts.className !== undefined) {
    if (own && own !== opts.className) {
      throw new ConfigError('CLASS_MISMATCH', `--class ${opts.className} disagrees with the class of ${label} (${own}); use --class ${own}`, 'class');
    }
    if (!own) {
      if (libraryOf(opts.className) === 'transformers') config.architectures = [opts.className];
      else config = { _class_name: opts.className, ...config };
    }
  }
  const className = opts.className ?? own;
  if (!className) throw new ConfigError('MISSING_OPTION', `${label} names no class (_class_name or architectures): give --class`, 'class');
  if (!architectureFor(className)) throw new ConfigError('UNKNOWN_CLASS', `--class ${className} is not supported (supported: ${supportedArchitectures().join(', ')})`, 'class');
  if (isScaled(scale)) {
    const encoders = presetName && getPreset(presetName).encoders ? scaledEncoderConfigs(presetName, className, scale) : undefined;
    config = scaleConfig(className, config, scale, encoders);
  }
  return { className, config, label };
}

/** The layout (name, shape, dtype of every tensor) of a preset, optionally scaled; writes nothing. */
export function presetLayout(name: string, opts: ScaleOptions & { dtype?: RandomDType } = {}): Layout {
  const spec = resolveComponent({ config: name, widthMult: opts.widthMult, depth: opts.depth });
  return componentLayout(spec, opts.dtype);
}

export function componentLayout(spec: ComponentSpec, dtype: RandomDType = 'float32'): Layout {
  const src = traceBuilder(spec.className, spec.config, dtype, 0, spec.label);
  return summarize(spec.className, spec.config, [...src.recorded].map(([name, shape]) => ({ name, shape, dtype })));
}

// ---------------------------------------------------------------- options

const UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, k: 1e3, m: 1e6, g: 1e9, t: 1e12,
};

/** `123`, `500MB`, `2GB`, `1.5GiB` → bytes (decimal units as Hugging Face's max_shard_size). */
export function parseSize(s: string | number, option = 'shard-size'): number {
  if (typeof s === 'number') {
    if (Number.isFinite(s) && s > 0) return Math.floor(s);
  } else {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(s);
    const unit = m ? UNITS[m[2]!.toLowerCase() || 'b'] : undefined;
    if (m && unit !== undefined && Number(m[1]) > 0) return Math.floor(Number(m[1]) * unit);
  }
  throw new ConfigError('BAD_OPTION', `--${option} ${s} is not supported (bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. 2GB)`, option);
}

const DTYPE_NAMES: Record<string, RandomDType> = { fp32: 'float32', float32: 'float32', fp16: 'float16', float16: 'float16', bf16: 'bfloat16', bfloat16: 'bfloat16' };

export function parseDType(s: string): RandomDType {
  const d = DTYPE_NAMES[s.toLowerCase()];
  if (!d) throw new ConfigError('BAD_OPTION', `--dtype ${s} is not supported (fp32, fp16, bf16)`, 'dtype');
  return d;
}

export function parseSeed(s: string | number): number {
  const v = typeof s === 'number' ? s : /^\s*-?\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(v)) throw new ConfigError('BAD_OPTION', `--seed ${s} is not supported (an integer in ±2^53)`, 'seed');
  return v;
}

function checkWriteOptions(o: RandomWriteOptions): void {
  if (o.seed !== undefined) parseSeed(o.seed);
  if (o.dtype !== undefined && !(RANDOM_DTYPES as readonly string[]).includes(o.dtype)) parseDType(o.dtype);
  if (o.shardSize !== undefined) parseSize(o.shardSize);
}

// ---------------------------------------------------------------- writing

/** Greedy shards in layout order, as save_pretrained splits: a new shard when the next tensor would overflow. */
export function planShards(entries: LayoutEntry[], maxBytes: number): LayoutEntry[][] {
  const shards: LayoutEntry[][] = [];
  let cur: LayoutEntry[] = [];
  let size = 0;
  for (const e of entries) {
    const b = e.shape.reduce((a, d) => a * d, 1) * (e.dtype === 'float32' ? 4 : 2);
    if (cur.length && size + b > maxBytes) {
      shards.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(e);
    size += b;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

function weightsStem(library: Library): string {
  return library === 'transformers' ? 'model' : 'diffusion_pytorch_model';
}

function writeJson(file: string, v: unknown): void {
  writeFileSync(file, `${JSON.stringify(v, null, 2)}\n`);
}

/**
 * Writes one component into `dir` (created; expected empty): config.json and the weights, one
 * file or shards + index. Data is generated tensor by tensor while writing (memory stays bounded
 * by the largest tensor).
 */
export function writeComponentFiles(dir: string, spec: ComponentSpec, opts: RandomWriteOptions = {}, label = basename(dir)): WrittenComponent {
  const dtype = opts.dtype ?? 'float32';
  const seed = opts.seed ?? 0;
  const library = libraryOf(spec.className);
  const src = traceBuilder(spec.className, spec.config, dtype, seed, spec.label);
  const entries: LayoutEntry[] = [...src.recorded].map(([name, shape]) => ({ name, shape, dtype }));
  const layout = summarize(spec.className, spec.config, entries);
  mkdirSync(dir, { recursive: true });
  // transformers configs record the dtype of the saved weights
  const config = library === 'transformers' && 'torch_dtype' in spec.config ? { ...spec.config, torch_dtype: dtype } : spec.config;
  writeFileSync(join(dir, 'config.json'), configText(config, spec.className));
  const maxBytes = opts.shardSize ?? (library === 'transformers' ? 5e9 : 10e9);
  const shards = planShards(entries, maxBytes);
  const stem = weightsStem(library);
  const files: string[] = ['config.json'];
  const total = entries.length;
  let done = 0;
  const meta = { format: 'pt' };
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = shards.length === 1 ? `${stem}.safetensors` : `${stem}-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    const list = shard.map((e) => {
      const t = src.make(e.name, e.shape);
      // progress counts each tensor as it is generated for writing
      const bytes = () => {
        const b = t.bytes();
        opts.onProgress?.(label, ++done, total);
        return b;
      };
      return { name: e.name, tensor: { dtype: t.dtype, shape: t.shape, byteLength: t.byteLength, bytes } };
    });
    writeSafetensors(join(dir, file), list, meta, 'rust');
    for (const e of shard) weightMap[e.name] = file;
    files.push(file);
  });
  if (shards.length > 1) {
    const index = `${stem}.safetensors.index.json`;
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
    writeJson(join(dir, index), { metadata: { total_size: layout.bytes }, weight_map: sorted });
    files.push(index);
  }
  return { folder: dir, className: spec.className, files, layout };
}

/**
 * Runs `write` into a temporary sibling of `out`, then renames it into place (replacing an
 * earlier output of ours with `force`). `bytes` is checked against the free space first.
 */
function atomicFolder<T>(out: string, force: boolean | undefined, bytes: number, write: (tmp: string) => T): T {
  return writeOutputFolder(out, { force, command: 'create-random', bytes: () => bytes, what: `create-random into ${out}` }, write);
}

/** Writes one random component folder at `out` (atomically). */
export function createRandomComponent(out: string, spec: ComponentSpec, opts: RandomWriteOptions = {}): WrittenComponent {
  checkWriteOptions(opts);
  const r = atomicFolder(out, opts.force, componentLayout(spec, opts.dtype).bytes, (tmp) => writeComponentFiles(tmp, spec, opts, basename(resolve(out))));
  return { ...r, folder: resolve(out) };
}

// ---------------------------------------------------------------- pipelines

/** The bundled tokenizer files (assets/tokenizers), found from src/ or dist/. */
export function tokenizerAssets(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = resolve(here, '..', '..', 'assets', 'tokenizers');
  if (!existsSync(dir)) throw new ModelFormatError('FILE_MISSING', 'the bundled tokenizers are missing', { file: dir });
  return dir;
}

function writeTokenizer(dir: string, kind: TokenizerKind, maxLength?: number): void {
  mkdirSync(dir, { recursive: true });
  const assets = tokenizerAssets();
  if (kind === 't5') {
    for (const f of ['tokenizer.json', 'special_tokens_map.json']) copyFileSync(join(assets, 't5', f), join(dir, f));
    const cfg = JSON.parse(readFileSync(join(assets, 't5', 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    if (maxLength) cfg.model_max_length = maxLength;
    writeJson(join(dir, 'tokenizer_config.json'), cfg);
    return;
  }
  for (const f of ['vocab.json', 'merges.txt']) copyFileSync(join(assets, 'clip', f), join(dir, f));
  const { config, specialTokens } = clipTokenizerFiles(kind === 'clip-pad-bang');
  writeJson(join(dir, 'tokenizer_config.json'), config);
  writeJson(join(dir, 'special_tokens_map.json'), specialTokens);
}

/**
 * Components to write in place of the pipeline's own (scaled) ones, by folder (`transformer`,
 * `text_encoder`, `vae`, ...): layouts the scaling options cannot say, e.g. a full-size CLIP-L
 * beside a scaled T5 (bench/workloads.mjs). Taken as given; the class must be the folder's.
 */
export type ComponentOverrides = Record<string, ComponentSpec>;

/** The component specs of a pipeline (released configs, scaled consistently when asked), with `overrides` in place of their folders' specs. */
export function pipelineSpecs(name: PipelineName | string, scale: ScaleOptions = {}, overrides: ComponentOverrides = {}): { folder: string; spec: ComponentSpec }[] {
  checkScaleOptions(scale);
  const def = getPipeline(name);
  const scaled = isScaled(scale);
  const den = getPreset(def.denoiser.preset);
  const enc = scaledEncoderConfigs(def.denoiser.preset, den.className, scaled ? scale : {}, def.encoders.map((e) => e.preset));
  const out: { folder: string; spec: ComponentSpec }[] = [];
  const denConfig = scaled ? scaleConfig(den.className, structuredClone(den.config) as Record<string, unknown>, scale, enc) : (structuredClone(den.config) as Record<string, unknown>);
  out.push({ folder: def.denoiser.folder, spec: { className: den.className, config: denConfig, label: `preset ${den.name}` } });
  const vae = getPreset(def.vae);
  out.push({ folder: 'vae', spec: { className: vae.className, config: scaled ? scaleConfig(vae.className, structuredClone(vae.config) as Record<string, unknown>, scale) : (structuredClone(vae.config) as Record<string, unknown>), label: `preset ${vae.name}` } });
  def.encoders.forEach((e, i) => {
    const p = getPreset(e.preset);
    out.push({ folder: e.folder, spec: { className: p.className, config: scaled ? enc.configs[i]! : (structuredClone(p.config) as Record<string, unknown>), label: `preset ${p.name}` } });
  });
  for (const [folder, spec] of Object.entries(overrides)) {
    const i = out.findIndex((o) => o.folder === folder);
    if (i < 0) throw new ConfigError('BAD_OPTION', `component override '${folder}': pipeline ${def.name} has no such component (${out.map((o) => o.folder).join(', ')})`, 'components');
    if (spec.className !== out[i]!.spec.className) {
      throw new ConfigError('CLASS_MISMATCH', `component override '${folder}' (${spec.label}) is a ${spec.className}; pipeline ${def.name} needs a ${out[i]!.spec.className} there`, 'components');
    }
    out[i] = { folder, spec };
  }
  return out;
}

export interface WrittenPipeline {
  folder: string;
  components: WrittenComponent[];
  /** every folder written (components, tokenizers, scheduler) */
  folders: string[];
}

/**
 * Writes a whole pipeline folder: every model component, the tokenizers (the bundled CLIP
 * vocabulary; the small bundled T5 tokenizer.json, whose ids all lie below T5's vocab_size),
 * scheduler/scheduler_config.json and model_index.json, as the released repository lays them out.
 */
export function createRandomPipeline(out: string, name: PipelineName | string, opts: RandomWriteOptions & ScaleOptions & { components?: ComponentOverrides } = {}): WrittenPipeline {
  checkWriteOptions(opts);
  const def = getPipeline(name);
  const specs = pipelineSpecs(name, { widthMult: opts.widthMult, depth: opts.depth }, opts.components);
  tokenizerAssets();
  const bytes = specs.reduce((a, { spec }) => a + componentLayout(spec, opts.dtype).bytes, 0);
  return atomicFolder(out, opts.force, bytes, (tmp) => {
    const components: WrittenComponent[] = [];
    const folders: string[] = [];
    for (const { folder, spec } of specs) {
      components.push({ ...writeComponentFiles(join(tmp, folder), spec, opts, folder), folder: join(resolve(out), folder) });
      folders.push(folder);
    }
    for (const t of def.tokenizers) {
      writeTokenizer(join(tmp, t.folder), t.kind, t.maxLength);
      folders.push(t.folder);
    }
    mkdirSync(join(tmp, 'scheduler'));
    writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), configText(def.scheduler as Record<string, unknown>));
    folders.push('scheduler');
    writeJson(join(tmp, 'model_index.json'), def.modelIndex);
    return { folder: resolve(out), components, folders };
  });
}
