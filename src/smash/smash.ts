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
import type { SessionTuning, SmashTarget } from '../algorithms/algorithm.js';
import { generationShapes } from '../algorithms/compilers/static-shapes.js';
import type { ComponentRole } from '../pipelines/description.js';
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
  const target: SmashTarget = { ...folderTarget(pipe.source.onnxDir, provider), shapes: (size) => generationShapes(pipe, size) };
  const applied = applyConfig(cfg, target);
  // static quantization first runs its prompts on the graphs as the preceding algorithms leave them
  for (const [i, a] of applied.applications.entries()) {
    if (a.calibration) await calibrate(pipe.source.onnxDir, a.calibration, applied.transformBefore(i), opts, pipe.generationDefaults);
  }
  const transform = applied.transform;
  const transformed = new Set<string>();
  // the algorithms' session options (a compiler's static shapes and threads), kept for the bundle
  const sessions: Record<string, SessionTuning> = {};
  const smashed = await loadOnnxPipeline(pipe.source.onnxDir, {
    ...opts,
    sessionOptions: tunedSessions(opts, (component) => (sessions[component] = applied.sessionOptions(component))),
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
  return attach(smashed, cfg, (dir) => writeBundle(pipe.source.onnxDir, rewrite, applied.writeGraph, cfg, provider, sessions, dir));
}

/**
 * The loader's per-component session options: the algorithms' tuning under the caller's own
 * options (theirs win, config entries merged), and the algorithms' intra-op threads unless the
 * caller set `threads`.
 */
function tunedSessions(opts: LoadPipelineOptions, tuned: (component: string) => SessionTuning) {
  return (component: string, role: ComponentRole) => {
    const t = tuned(component);
    const own = { ...opts.session, ...opts.sessionOptions?.(component, role) };
    const configEntries = t.configEntries || own.configEntries ? { configEntries: { ...t.configEntries, ...own.configEntries } } : {};
    return { ...t, ...own, ...configEntries };
  };
}

/** A bundle's `sessions` (component -> session options), checked: a malformed file names the key. */
function readSessions(raw: unknown, file: string): Record<string, SessionTuning> {
  if (raw === undefined) return {};
  const bad = (key: string, what: string) => new ModelFormatError('SMASH_CONFIG_JSON', `${SMASH_CONFIG_FILE}: sessions${key} ${what}`, { file });
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw)) throw bad('', 'must be an object (component -> session options)');
  const count = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  for (const [c, o] of Object.entries(raw)) {
    if (!isObject(o)) throw bad(`.${c}`, 'must be an object');
    for (const [k, v] of Object.entries(o)) {
      const key = `.${c}.${k}`;
      if (k === 'threads' || k === 'interOpThreads') {
        if (!count(v)) throw bad(key, `must be a positive integer, got ${JSON.stringify(v)}`);
      } else if (k === 'executionMode') {
        if (v !== 'sequential' && v !== 'parallel') throw bad(key, `must be 'sequential' or 'parallel', got ${JSON.stringify(v)}`);
      } else if (k === 'staticShapes' || k === 'configEntries') {
        if (!isObject(v)) throw bad(key, 'must be an object');
        for (const [n, x] of Object.entries(v)) {
          if (k === 'staticShapes' ? !count(x) : typeof x !== 'string') throw bad(`${key}.${n}`, `must be ${k === 'staticShapes' ? 'a positive integer' : 'a string'}, got ${JSON.stringify(x)}`);
        }
      } else throw bad(key, 'is not a session option (known: threads, interOpThreads, executionMode, configEntries, staticShapes)');
    }
  }
  return raw as Record<string, SessionTuning>;
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
  sessions: Readonly<Record<string, SessionTuning>>,
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
  const tuned = Object.fromEntries(Object.entries(sessions).filter(([, o]) => Object.keys(o).length));
  const extra = Object.keys(tuned).length ? { sessions: tuned } : {};
  writeFileSync(join(out, SMASH_CONFIG_FILE), `${JSON.stringify({ algorithms: config.toJSON(), provider, ...extra, versions: VERSIONS() }, null, 2)}\n`);
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
  // the graphs are transformed already; only the denoiser wrappers (cachers) are armed again, and
  // the sessions get the options the smashed pipeline's had (static shapes, threads)
  const applied = applyConfig(config, folderTarget(dir, provider));
  const saved = readSessions(raw.sessions, file);
  const sessions: Record<string, SessionTuning> = {};
  const pipe = await loadOnnxPipeline(dir, { ...opts, sessionOptions: tunedSessions(opts, (c) => (sessions[c] = saved[c] ?? applied.sessionOptions(c))) });
  pipe.denoiser = applied.wrapDenoiser(pipe.denoiser);
  // a bundle saves as itself: its graphs are the transformed ones
  return attach(pipe, config, (out) => writeBundle(pipe.source.onnxDir, () => undefined, applied.writeGraph, config, String(provider), sessions, out));
}
