import { mkdtempSync, rmSync } from 'node:fs';
import { checkRegularFile } from '../fs/files.js';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { ConfigError, RuntimeFailure } from '../errors.js';
import type { DType, TypedArray } from '../core/dtype.js';
import type { Dim, Graph, Model } from '../ir/graph.js';
import { ExternalTensor } from '../core/tensor.js';
import { encodeModel } from '../ir/serde.js';
import { loadModel, saveModel } from '../ir/model-file.js';
import { adaptFeed, adaptOutput, type InputSpec } from './adapt.js';
import { isProvider, providerUnavailable, PROVIDERS, type ProviderName } from './providers.js';

/** A tensor on the host: what pipelines feed and get back. */
export interface HostTensor {
  dtype: DType;
  dims: readonly number[];
  data: TypedArray;
}

export interface SessionOptions {
  provider?: ProviderName;
  /** intra-op threads (default: onnxruntime's choice, all cores; `SMASH_ORT_THREADS` where set, see `envSessionDefaults`) */
  threads?: number;
  optimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /** fix dynamic dimensions by their symbolic name, e.g. { batch_size: 2 }, so ORT can plan static shapes */
  freeDimensionOverrides?: Record<string, number>;
  /** where to write the optimized model (ORT's offline optimization) */
  optimizedModelPath?: string;
  /** called with a message when a requested provider is unavailable and cpu is used instead */
  onWarning?: (message: string) => void;
  /**
   * onnxruntime's CPU memory arena (default true, onnxruntime's default). The arena keeps every
   * activation peak for the life of the session; without it activations go back to the system
   * after each run (see the README's memory figures).
   */
  memArena?: boolean;
  /** onnxruntime's memory pattern planning (default true) */
  memPattern?: boolean;
  /** session config entries, e.g. { 'session.disable_prepacking': '1' } (onnxruntime_session_options_config_keys.h) */
  configEntries?: Readonly<Record<string, string>>;
  /** inter-op threads (used by the parallel execution mode only) */
  interOpThreads?: number;
  /** onnxruntime's execution mode (default sequential: one node at a time, each on the intra-op threads) */
  executionMode?: 'sequential' | 'parallel';
  /**
   * Static shapes: named dims of the graph inputs fixed to these sizes, as `freeDimensionOverrides`
   * fixes them, but a run whose feeds give one of these dims another size re-creates the session
   * for the feeds' sizes (the old one released first) instead of failing; `reshapes` records each.
   */
  staticShapes?: Readonly<Record<string, number>>;
}

/** A session created again for other static sizes (see `SessionOptions.staticShapes`). */
export interface Reshape {
  /** the sizes the session was created for */
  dims: Readonly<Record<string, number>>;
  /** what releasing the old session and creating the new one took */
  ms: number;
}

/**
 * A tensor as onnxruntime holds it. Fed back as it is: no copy into a new host array, no
 * float16 -> float32 widening (state tensors that only go back into the next run), and no
 * adaptation (feeds prepared once per generation, see `Session.prepare`).
 */
export type OrtTensor = ort.Tensor;

/** What a run accepts per input. */
export type Feed = HostTensor | OrtTensor;

export function isOrtTensor(t: unknown): t is OrtTensor {
  return t instanceof ort.Tensor;
}

export interface RunOptions {
  /** outputs to return as they are, in `kept` (not copied, not widened), instead of in `outputs` */
  keep?: readonly string[];
}

export interface RunResult {
  /** fetched outputs as host tensors (float16 widened to float32) */
  outputs: Record<string, HostTensor>;
  /** the outputs named in `keep`, as onnxruntime returned them */
  kept: Record<string, OrtTensor>;
  ms: number;
}

/** The environment variable that bounds onnxruntime's CPU threads process-wide (see `envSessionDefaults`). */
export const ORT_THREADS_ENV = 'SMASH_ORT_THREADS';

/**
 * Session defaults from the environment, for machines where several processes share few cores
 * (the test runner sets it for its files, two at a time on two cores): `SMASH_ORT_THREADS=n` gives
 * every session that does not set `threads` n intra-op threads, and keeps every session's thread
 * pools from spinning while they wait for work (onnxruntime's threads otherwise busy-wait, taking
 * cores from the other processes) unless its `configEntries` say otherwise. Unset or empty, it
 * changes nothing: onnxruntime's defaults stand. This is the only place the library reads it.
 */
export function envSessionDefaults(env: NodeJS.ProcessEnv = process.env): { threads: number; configEntries: Record<string, string> } | undefined {
  const raw = env[ORT_THREADS_ENV];
  if (raw === undefined || raw.trim() === '') return undefined;
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1) throw new ConfigError('ORT_THREADS_ENV', `${ORT_THREADS_ENV} must be a positive integer (got '${raw}')`, ORT_THREADS_ENV);
  return { threads, configEntries: { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' } };
}

/** where onnxruntime-node keeps its native libraries (provider libraries sit beside them) */
const BINDING_DIR = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..', 'bin', `napi-v6`, process.platform, process.arch);

/** Protobuf holds at most 2 GB: above this, a model goes to ORT as a file with external data. */
const INLINE_LIMIT = 1.8 * 1024 ** 3;

function totalWeightBytes(model: Model): number {
  let n = 0;
  for (const v of model.graph.initializers.values()) n += v.const!.byteLength;
  return n;
}

/**
 * The folder whose external-data files hold a model's weights, when every external weight still
 * lies in one folder and the rest is small enough to go inline (a graph loaded from disk and
 * rewritten around its weights: fusions, dimension overrides). Such a model goes to onnxruntime
 * as bytes that point at those files in place (`session.model_external_initializers_file_folder_path`):
 * no copy of gigabytes of weights into a temporary folder or into JavaScript memory.
 */
export function weightsFolder(model: Model): string | undefined {
  let folder: string | undefined;
  let inline = 0;
  const visit = (g: Graph): boolean => {
    for (const v of g.initializers.values()) {
      const t = v.const!;
      if (t instanceof ExternalTensor) {
        // ONNX external-data files only: a graph built from a checkpoint reads its safetensors files,
        // which scratch folders rewrite and remove (onnxruntime then fails to find them)
        if (t.location.file.endsWith('.safetensors')) return false;
        const d = dirname(t.location.file);
        if ((folder ??= d) !== d) return false;
      } else inline += t.byteLength;
    }
    return g.nodeList().every((n) => n.subgraphs().every(visit));
  };
  return visit(model.graph) && inline < INLINE_LIMIT ? folder : undefined;
}

/**
 * An onnxruntime-node session created from an ir.Model or an .onnx path. Runs are timed; a
 * provider that cannot be created falls back to cpu with a warning.
 */
export class Session {
  /** the graph's declared inputs; feeds are adapted to them (see adapt.ts) */
  readonly inputs: ReadonlyMap<string, InputSpec>;

  /** null while unloaded (see `unload`) */
  private ort: ort.InferenceSession | null;
  private reloading: Promise<ort.InferenceSession> | undefined;
  private released = false;
  /** static shapes: the sizes the session is created for now */
  private bound: Readonly<Record<string, number>> | undefined;
  /** static shapes: each graph input's declared dims, symbolic names kept (what `bound` fixes) */
  private symbolic: ReadonlyMap<string, readonly Dim[]> | undefined;
  /** static shapes: every re-creation for other sizes so far, in order */
  readonly reshapes: Reshape[] = [];

  private constructor(
    handle: ort.InferenceSession,
    readonly provider: ProviderName,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
    /** creates the onnxruntime session again (same source and options, these static sizes) after `unload` */
    private readonly recreate: (staticShapes: Readonly<Record<string, number>> | undefined) => Promise<ort.InferenceSession>,
  ) {
    this.ort = handle;
    const specs = new Map<string, InputSpec>();
    for (const m of handle.inputMetadata ?? []) {
      if (m.isTensor) specs.set(m.name, { name: m.name, dtype: m.type as DType, dims: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : undefined)) });
    }
    this.inputs = specs;
  }

  /** The static sizes the session is created for now (undefined without `staticShapes`). */
  get staticShapes(): Readonly<Record<string, number>> | undefined {
    return this.bound;
  }

  /** The time spent re-creating the session for other static sizes so far. */
  get reshapeMs(): number {
    return this.reshapes.reduce((a, r) => a + r.ms, 0);
  }

  static async create(source: Model | string, opts: SessionOptions = {}): Promise<Session> {
    const provider = opts.provider ?? 'cpu';
    const again = source;
    if (typeof source === 'string') checkRegularFile(source, 'ONNX model'); // FILE_MISSING, not onnxruntime's message
    if (!isProvider(provider)) throw new ConfigError('PROVIDER', `unknown execution provider '${provider}' (known: ${PROVIDERS.join(', ')})`, 'provider');
    const fromEnv = envSessionDefaults();
    let tmp: string | undefined;
    let src: string | Uint8Array;
    // the session's own entries win over the environment's
    let configEntries = fromEnv ? { ...fromEnv.configEntries, ...opts.configEntries } : opts.configEntries;
    // onnxruntime-node 1.30 does not take free-dimension overrides (its binding reads no
    // `freeDimensionOverrides`; onnxruntime-web does): we fix the named dims of the graph inputs
    // ourselves before ORT sees the model, and its shape inference carries them through the graph
    const overrides = opts.freeDimensionOverrides || opts.staticShapes ? { ...opts.freeDimensionOverrides, ...opts.staticShapes } : undefined;
    if (overrides && typeof source === 'string') source = loadModel(source);
    const symbolic = opts.staticShapes && typeof source !== 'string' ? new Map(source.graph.inputs.map((v) => [v.name, [...(v.shape ?? [])]] as const)) : undefined;
    const restore = overrides && typeof source !== 'string' ? fixDims(source, overrides) : undefined;
    try {
      // an optimized model written out must not point back at the source's files
      const folder = typeof source === 'string' || opts.optimizedModelPath ? undefined : weightsFolder(source);
      if (typeof source === 'string') src = source;
      else if (folder) {
        src = encodeModel(source, (_name, t) =>
          t instanceof ExternalTensor && dirname(t.location.file) === folder ? { location: basename(t.location.file), offset: t.location.offset, length: t.location.length } : undefined);
        configEntries = { ...configEntries, 'session.model_external_initializers_file_folder_path': folder };
      } else if (totalWeightBytes(source) < INLINE_LIMIT) src = encodeModel(source);
      else {
        tmp = mkdtempSync(join(tmpdir(), 'smash-session-'));
        src = join(tmp, 'model.onnx');
        saveModel(source, src);
      }
    } finally {
      restore?.();
    }
    const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: opts.optimizationLevel ?? 'all', logSeverityLevel: 3 };
    // ORT rejects keys that are present but undefined
    const threads = opts.threads ?? fromEnv?.threads;
    if (threads !== undefined) base.intraOpNumThreads = threads;
    if (opts.optimizedModelPath) base.optimizedModelFilePath = opts.optimizedModelPath;
    if (opts.memArena !== undefined) base.enableCpuMemArena = opts.memArena;
    if (opts.memPattern !== undefined) base.enableMemPattern = opts.memPattern;
    if (opts.interOpThreads !== undefined) base.interOpNumThreads = opts.interOpThreads;
    if (opts.executionMode !== undefined) base.executionMode = opts.executionMode;
    // onnxruntime-node takes `extra` as flat config entries with string values
    if (configEntries && Object.keys(configEntries).length) base.extra = { ...configEntries };
    const make = (p: ProviderName) => ort.InferenceSession.create(src as never, { ...base, executionProviders: p === 'cpu' ? ['cpu'] : [p, 'cpu'] });
    try {
      let s: ort.InferenceSession;
      let used = provider;
      try {
        const why = providerUnavailable(provider, BINDING_DIR);
        if (why) throw new Error(why);
        s = await make(provider);
      } catch (e) {
        if (provider === 'cpu') throw new RuntimeFailure('ORT_SESSION', `onnxruntime could not create a session: ${(e as Error).message}`, { cause: e });
        (opts.onWarning ?? ((m: string) => process.emitWarning(m)))(`execution provider '${provider}' is unavailable (${firstLine(e)}); using cpu`);
        used = 'cpu';
        try {
          s = await make('cpu');
        } catch (e2) {
          throw new RuntimeFailure('ORT_SESSION', `onnxruntime could not create a session: ${(e2 as Error).message}`, { cause: e2 });
        }
      }
      // the same source and options, on the provider that worked
      const recreate = (staticShapes: Readonly<Record<string, number>> | undefined) =>
        Session.create(again, { ...opts, provider: used, ...(staticShapes ? { staticShapes } : {}) }).then((x) => x.detach());
      const session = new Session(s, used, s.inputNames, s.outputNames, recreate);
      if (opts.staticShapes) {
        session.bound = { ...opts.staticShapes };
        session.symbolic = symbolic;
      }
      return session;
    } finally {
      // ORT has read the files into the session by now
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Host feeds adapted to the graph so far (see `prepare`): tests count these. */
  adaptations = 0;

  /**
   * Adapts host feeds to the graph's declared dtypes and ranks once and wraps them as ORT
   * tensors, so feeds that do not change during a generation (text embeddings, ids) are not
   * adapted again on every run.
   */
  prepare(feeds: Record<string, HostTensor>): Record<string, OrtTensor> {
    const out: Record<string, OrtTensor> = {};
    for (const [k, raw] of Object.entries(feeds)) out[k] = this.toOrt(k, raw);
    return out;
  }

  private toOrt(name: string, raw: HostTensor): OrtTensor {
    this.adaptations++;
    const spec = this.inputs.get(name);
    const t = spec ? adaptFeed(raw, spec) : raw;
    return new ort.Tensor(t.dtype as never, t.data as never, t.dims as number[]);
  }

  /**
   * Runs with named feeds (host tensors are adapted, ORT tensors go in as they are); `fetches`
   * restricts the outputs (default: all); outputs named in `opts.keep` come back untouched in `kept`.
   */
  async run(feeds: Record<string, Feed>, fetches?: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const [k, raw] of Object.entries(feeds)) ortFeeds[k] = isOrtTensor(raw) ? raw : this.toOrt(k, raw);
    const sizes = this.otherSizes(ortFeeds);
    if (sizes) await this.reshape(sizes);
    const handle = await this.load();
    const t0 = performance.now();
    let res: ort.InferenceSession.ReturnType;
    try {
      res = fetches ? await handle.run(ortFeeds, fetches as string[]) : await handle.run(ortFeeds);
    } catch (e) {
      throw new RuntimeFailure('ORT_RUN', `onnxruntime run failed: ${(e as Error).message}`, { cause: e });
    }
    const ms = performance.now() - t0;
    const outputs: Record<string, HostTensor> = {};
    const kept: Record<string, OrtTensor> = {};
    const keep = new Set(opts.keep ?? []);
    for (const [k, v] of Object.entries(res)) {
      if (keep.has(k)) kept[k] = v;
      else outputs[k] = adaptOutput({ dtype: v.type as DType, dims: [...v.dims], data: v.data as TypedArray });
    }
    return { outputs, kept, ms };
  }

  /** Whether onnxruntime's session exists now (false after `unload`, until the next run). */
  get loaded(): boolean {
    return this.ort !== null;
  }

  /**
   * Releases onnxruntime's session (its weights and arena) but stays usable: the next run creates
   * it again from the same source and options. Low-memory pipelines unload each component after
   * its stage. A session created from an in-memory model keeps that model for this.
   */
  async unload(): Promise<void> {
    await this.reloading?.catch(() => undefined);
    const h = this.ort;
    this.ort = null;
    await h?.release();
  }

  /** onnxruntime's session, created again if unloaded. */
  async load(): Promise<ort.InferenceSession> {
    if (this.ort) return this.ort;
    if (this.released) throw new RuntimeFailure('ORT_RELEASED', 'the session was released');
    this.reloading ??= this.recreate(this.bound).finally(() => { this.reloading = undefined; });
    const h = await this.reloading;
    this.ort = h;
    return h;
  }

  /**
   * Static shapes: the sizes these feeds give the bound dims when one differs from the session's
   * (the other bound dims kept), else undefined. A dim the feeds give two sizes is left to ORT,
   * which names the input.
   */
  private otherSizes(feeds: Record<string, OrtTensor>): Record<string, number> | undefined {
    if (!this.bound || !this.symbolic) return undefined;
    const next: Record<string, number> = { ...this.bound };
    const seen = new Set<string>();
    let changed = false;
    for (const [name, dims] of this.symbolic) {
      const f = feeds[name];
      if (!f || f.dims.length !== dims.length) continue;
      dims.forEach((d, i) => {
        if (typeof d !== 'string' || !(d in next) || seen.has(d)) return;
        seen.add(d);
        if (next[d] !== f.dims[i]) {
          next[d] = f.dims[i]!;
          changed = true;
        }
      });
    }
    return changed ? next : undefined;
  }

  /** Creates the session again for other static sizes: the old one released first, so one exists at a time. */
  private async reshape(sizes: Record<string, number>): Promise<void> {
    const t0 = performance.now();
    await this.unload();
    this.bound = sizes;
    await this.load();
    this.reshapes.push({ dims: sizes, ms: performance.now() - t0 });
  }

  /** Hands over onnxruntime's session to another Session object (see `recreate`). */
  private detach(): ort.InferenceSession {
    const h = this.ort!;
    this.ort = null;
    this.released = true;
    return h;
  }

  async release(): Promise<void> {
    this.released = true;
    await this.unload();
  }
}

/** Sets named dims of the graph inputs to fixed sizes; returns a function that undoes it. */
function fixDims(model: Model, overrides: Record<string, number>): () => void {
  const saved = model.graph.inputs.map((v) => v.shape);
  for (const v of model.graph.inputs) {
    if (v.shape) v.shape = v.shape.map((d) => (typeof d === 'string' && d in overrides ? overrides[d]! : d));
  }
  return () => model.graph.inputs.forEach((v, i) => { v.shape = saved[i]; });
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}

export function f32(dims: readonly number[], data: Float32Array | number[]): HostTensor {
  return { dtype: 'float32', dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

export function i64(dims: readonly number[], data: BigInt64Array | number[]): HostTensor {
  return { dtype: 'int64', dims, data: data instanceof BigInt64Array ? data : BigInt64Array.from(data.map((x) => BigInt(x))) };
}
