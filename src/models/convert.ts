import { readJsonObject } from '../json.js';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { checkComponentName } from '../fs/names.js';
import { checkOutputFolder, writeOutputFolder } from '../fs/output.js';
import { convertedBytes } from '../tensors/footprint.js';
import type { DType } from '../core/dtype.js';
import type { Model } from '../ir/graph.js';
import { float16 } from '../ir/passes/float16.js';
import { saveModel } from '../ir/model-file.js';
import { Checkpoint } from '../tensors/checkpoint.js';
import { ModelConfig } from './config.js';
import { architectureFor, supportedArchitectures } from './registry.js';
import { Weights } from './weights.js';
import './architectures.js';
import { refreshBlocks } from '../ir/blocks.js';

export interface ConvertOptions {
  /** weight dtype of the written graphs (default float32) */
  dtype?: Extract<DType, 'float32' | 'float16'>;
  /** checkpoint variant, e.g. `fp16` for `diffusion_pytorch_model.fp16.safetensors` */
  variant?: string;
  /** replace an existing output folder */
  force?: boolean;
  /** progress per component: tensors written so far out of the total */
  onProgress?: (component: string, done: number, total: number) => void;
  onWarning?: (message: string) => void;
  /**
   * Rewrites each graph before it is written (`smash convert --quantize`): `component` is the
   * output folder name (`unet`, `vae_decoder`…); the class is in the model's `diffusers.class_name`.
   */
  transform?: (component: string, model: Model) => Model;
}

/** Builds the graph(s) of one diffusers/transformers component folder (config.json + safetensors). */
export function buildComponent(folder: string, opts: Pick<ConvertOptions, 'dtype' | 'variant'> = {}): Record<string, Model> {
  const config = ModelConfig.load(folder);
  const build = architectureFor(config.className);
  if (!build) {
    throw new ModelFormatError('UNSUPPORTED_ARCHITECTURE', `class '${config.className || '(none)'}' is not supported (supported: ${supportedArchitectures().join(', ')})`, { file: config.file });
  }
  // graphs are built in float32 (weights upcast lazily); float16 is a pass over the result
  const weights = new Weights(Checkpoint.open(folder, opts.variant), 'float32');
  const models = build(config, weights);
  for (const m of Object.values(models)) {
    // float16 renames the values at the graph's edges: the block records follow
    if (opts.dtype === 'float16') { float16.run(m); refreshBlocks(m); }
    m.metadataProps.set('source', basename(resolve(folder)));
    if (!m.metadataProps.has('diffusers.class_name')) m.metadataProps.set('diffusers.class_name', config.className);
  }
  return models;
}

/**
 * Converts a component folder or a whole pipeline folder (model_index.json) into ONNX folders
 * in Optimum's layout. Writes into a temporary sibling folder and renames it into place at the
 * end, so a failure leaves no half-written output.
 */
export function convert(src: string, out: string, opts: ConvertOptions = {}): { components: string[] } {
  if (!existsSync(src) || !statSync(src).isDirectory()) throw new ModelFormatError('FILE_MISSING', 'no such model folder', { file: src });
  // the output is checked before the source's index is read, as a user would want it named first
  checkOutputFolder(out, { sources: [src], force: opts.force });
  const index = join(src, 'model_index.json');
  const entries = existsSync(index) ? readPipelineIndex(index) : undefined;
  const written: string[] = [];
  const check = { sources: [src], force: opts.force, command: 'convert', bytes: () => estimateBytes(src, entries, opts), what: `converting ${src}` };
  writeOutputFolder(out, check, (tmp) => {
    if (entries) {
      for (const [name, [, cls]] of entries) {
        const sub = join(src, name);
        if (!cls) continue;
        if (!existsSync(sub)) throw new ModelFormatError('COMPONENT_MISSING', `component '${name}' (${cls}) is listed in model_index.json but its folder is missing`, { file: index });
        if (architectureFor(cls)) {
          written.push(...writeComponent(sub, tmp, name, opts));
        } else if (/Tokenizer|Scheduler/.test(cls) || name.startsWith('tokenizer') || name === 'scheduler') {
          cpSync(sub, join(tmp, name), { recursive: true });
          written.push(name);
        } else {
          opts.onWarning?.(`component '${name}' (${cls}) is not converted: not needed for generation or not supported`);
        }
      }
      cpSync(index, join(tmp, 'model_index.json'));
      if (existsSync(join(src, 'smash.json'))) cpSync(join(src, 'smash.json'), join(tmp, 'smash.json')); // generation defaults
    } else {
      written.push(...writeComponent(src, tmp, undefined, opts));
    }
  });
  return { components: written };
}

/** The bytes a conversion writes (the weights at the output dtype), from checkpoint headers. */
function estimateBytes(src: string, entries: ReturnType<typeof readPipelineIndex> | undefined, opts: ConvertOptions): number {
  const dtype = opts.dtype ?? 'float32';
  if (!entries) return architectureFor(ModelConfig.load(src).className) ? convertedBytes(src, dtype, opts.variant) : 0;
  let total = 0;
  for (const [name, [, cls]] of entries) {
    const sub = join(src, name);
    if (cls && architectureFor(cls) && existsSync(sub)) total += convertedBytes(sub, dtype, opts.variant);
  }
  return total;
}

/**
 * Writes one component's graph(s): into `root/name` (a pipeline's component), or into `root`
 * itself for a standalone folder; a VAE's two graphs go to `<name>_encoder` and `<name>_decoder`
 * (Optimum's `vae_encoder/`, `vae_decoder/`).
 */
function writeComponent(folder: string, root: string, name: string | undefined, opts: ConvertOptions): string[] {
  const models = buildComponent(folder, opts);
  const written: string[] = [];
  for (const [key, built] of Object.entries(models)) {
    const sub = key === 'model' ? (name ?? '') : `${name ?? 'vae'}_${key}`;
    const dir = join(root, sub);
    const label = sub || basename(resolve(folder));
    const model = opts.transform ? opts.transform(label, built) : built;
    mkdirSync(dir, { recursive: true });
    saveModel(model, join(dir, 'model.onnx'), { onTensor: (d, t) => opts.onProgress?.(label, d, t) });
    writeFileSync(join(dir, 'config.json'), readFileSync(join(folder, 'config.json')));
    written.push(label);
  }
  return written;
}

/** model_index.json: component name → [library, class] (null for absent components). */
export function readPipelineIndex(file: string): [string, [string | null, string | null]][] {
  const raw = readJsonObject(file, 'model_index.json', 'CONFIG_JSON');
  return Object.entries(raw)
    .filter(([k, v]) => !k.startsWith('_') && Array.isArray(v) && v.length === 2)
    .map(([k, v]) => [checkComponentName(k, file), v as [string | null, string | null]]);
}
