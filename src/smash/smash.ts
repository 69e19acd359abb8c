/**
 * smash(): a pipeline with the same generate(), its graphs rewritten by a SmashConfig at load
 * time (no second conversion), and save()/loadPipeline() for the result: a bundle is an ONNX
 * folder in Optimum's layout holding the transformed graphs, plus `smash_config.json`, so loading
 * it redoes no optimization.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { ModelFormatError } from '../errors.js';
import { OUTPUT_MARKER, writeOutputFolder } from '../fs/output.js';
import type { Model } from '../ir/graph.js';
import { loadModel } from '../ir/model-file.js';
import { readJsonObject } from '../json.js';
import { packageVersion } from '../pipelines/cache.js';
import { loadPipeline as loadOnnxPipeline, type LoadPipelineOptions, type Pipeline } from '../pipelines/loader.js';
import type { SmashTarget } from '../algorithms/algorithm.js';
import { applyConfig } from './apply.js';
import { calibrate } from './calibrate.js';
import { SmashConfig } from './config.js';
import { folderTarget } from './target.js';

export const SMASH_CONFIG_FILE = 'smash_config.json';

const require = createRequire(import.meta.url);
const VERSIONS = () => ({
  'smash-diffusion': packageVersion(),
  'onnxruntime-node': (require('onnxruntime-node/package.json') as { version: string }).version,
});

export interface Smashed {
  readonly smashConfig: SmashConfig;
  /** Writes the smashed pipeline as a bundle that `loadPipeline` restores; `overwrite` replaces only an earlier output of smash. */
  save(dir: string, opts?: { overwrite?: boolean }): Promise<void>;
}

export type SmashedPipeline = Pipeline & Smashed;

export type SmashOptions = Pick<LoadPipelineOptions, 'provider' | 'threads' | 'session' | 'sessionOptions' | 'lowMemory' | 'onWarning'>;

/**
 * Applies `config` to a loaded pipeline: every algorithm is checked against the pipeline before
 * any work, then the pipeline's ONNX graphs are loaded again through the config's transform.
 * The given pipeline stays usable; release it when it is no longer needed.
 */
export async function smash(pipe: Pipeline, config: SmashConfig | Record<string, unknown>, opts: SmashOptions = {}): Promise<SmashedPipeline> {
  const cfg = config instanceof SmashConfig ? config : new SmashConfig(config);
  const provider = opts.provider ?? 'cpu';
  const applied = applyConfig(cfg, folderTarget(pipe.source.onnxDir, provider));
  // static quantization first runs its prompts on the graphs as the preceding algorithms leave them
  for (const [i, a] of applied.applications.entries()) {
    if (a.calibration) await calibrate(pipe.source.onnxDir, a.calibration, applied.transformBefore(i), opts, pipe.generationDefaults);
  }
  const transform = applied.transform;
  const transformed = new Set<string>();
  const smashed = await loadOnnxPipeline(pipe.source.onnxDir, {
    ...opts,
    transform: (component, model) => {
      transformed.add(component);
      return transform(component, model);
    },
  });
  smashed.generationDefaults = pipe.generationDefaults;
  smashed.denoiser = applied.wrapDenoiser(smashed.denoiser);
  // save() transforms the source graphs again (the transforms are deterministic) rather than
  // holding every rewritten graph in memory for the pipeline's lifetime
  const rewrite = (component: string): Model | undefined =>
    transformed.has(component) ? transform(component, loadModel(join(pipe.source.onnxDir, component, 'model.onnx'))) : undefined;
  return attach(smashed, cfg, (dir) => writeBundle(pipe.source.onnxDir, rewrite, applied.writeGraph, cfg, provider, dir));
}

function attach(pipe: Pipeline, config: SmashConfig, write: (dir: string) => Promise<void>): SmashedPipeline {
  const smashed = pipe as SmashedPipeline;
  Object.defineProperty(smashed, 'smashConfig', { value: config, enumerable: true });
  Object.defineProperty(smashed, 'save', {
    value: async (dir: string, o: { overwrite?: boolean } = {}) => {
      // as convert: never into the source, and `overwrite` replaces only an earlier output of ours
      await writeOutputFolder(dir, { sources: [pipe.source.dir, pipe.source.onnxDir], force: o.overwrite, option: 'dir', command: 'smash save' }, write);
    },
  });
  return smashed;
}

/** The source ONNX folder with the transformed graphs in place of its own, and the config. */
async function writeBundle(
  sourceDir: string,
  rewrite: (component: string) => Model | undefined,
  writeGraph: (model: Model, file: string) => Promise<void>,
  config: SmashConfig,
  provider: string,
  out: string,
): Promise<void> {
  mkdirSync(out, { recursive: true });
  for (const entry of readdirSync(sourceDir, { withFileTypes: true })) {
    if (entry.name === SMASH_CONFIG_FILE || entry.name === OUTPUT_MARKER) continue;
    const from = join(sourceDir, entry.name);
    const graph = entry.isDirectory() ? rewrite(entry.name) : undefined;
    if (!graph) {
      cpSync(from, join(out, entry.name), { recursive: true });
      continue;
    }
    // the component folder without its graph and weights, which are written anew
    mkdirSync(join(out, entry.name));
    for (const f of readdirSync(from)) if (!/^model\.onnx(_data.*)?$/.test(f)) cpSync(join(from, f), join(out, entry.name, f), { recursive: true });
    await writeGraph(graph, join(out, entry.name, 'model.onnx'));
  }
  writeFileSync(join(out, SMASH_CONFIG_FILE), `${JSON.stringify({ algorithms: config.toJSON(), provider, versions: VERSIONS() }, null, 2)}\n`);
}

/**
 * Loads a pipeline: a diffusers folder, an ONNX folder, or a smashed bundle (its graphs are
 * already transformed; the config comes back as `smashConfig`).
 */
export async function loadPipeline(dir: string, opts: LoadPipelineOptions = {}): Promise<Pipeline | SmashedPipeline> {
  const file = join(dir, SMASH_CONFIG_FILE);
  if (!existsSync(file)) return loadOnnxPipeline(dir, opts);
  const raw = readJsonObject(file, SMASH_CONFIG_FILE, 'SMASH_CONFIG_JSON');
  const algorithms = raw.algorithms;
  if (!algorithms || typeof algorithms !== 'object' || Array.isArray(algorithms)) {
    throw new ModelFormatError('SMASH_CONFIG_JSON', `${SMASH_CONFIG_FILE} has no "algorithms" object`, { file });
  }
  const config = new SmashConfig(algorithms as Record<string, unknown>);
  const provider = String(raw.provider ?? 'cpu') as SmashTarget['provider'];
  // the graphs are transformed already; only the denoiser wrappers (cachers) are armed again
  const applied = applyConfig(config, folderTarget(dir, provider));
  const pipe = await loadOnnxPipeline(dir, opts);
  pipe.denoiser = applied.wrapDenoiser(pipe.denoiser);
  // a bundle saves as itself: its graphs are the transformed ones
  return attach(pipe, config, (out) => writeBundle(pipe.source.onnxDir, () => undefined, applied.writeGraph, config, String(provider), out));
}
