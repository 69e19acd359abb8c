/**
 * What every smashing algorithm is: a typed object with a name, a kind, a hyperparameter schema
 * (defaults, ranges and one-line descriptions live in the schema), a support check against the
 * pipeline it would change, ordering constraints and `apply`. Algorithms know nothing of the CLI.
 */
import type { z } from 'zod';
import type { Model } from '../ir/graph.js';
import type { Denoiser } from '../pipelines/denoiser.js';
import type { ProfileName } from '../runtime/profiles.js';
import type { SessionOptions } from '../runtime/session.js';

export type AlgorithmKind = 'factorizer' | 'quantizer' | 'cacher' | 'compiler';

/** The default order of application: graph structure first, then weights, caching, and compilation last. */
export const KIND_ORDER: readonly AlgorithmKind[] = ['factorizer', 'quantizer', 'cacher', 'compiler'];

/** Kinds that cannot stack: two quantizers (or two cachers) would fight over the same nodes or steps. */
export const EXCLUSIVE_KINDS: ReadonlySet<AlgorithmKind> = new Set(['quantizer', 'cacher']);

/** The architecture of a pipeline's denoiser, which decides what an algorithm can act on. */
export type DenoiserArchitecture = 'unet' | 'flux' | 'sd3';

/** What an algorithm needs to know about the pipeline it is asked to change. */
export interface SmashTarget {
  /** diffusers' pipeline class, e.g. `FluxPipeline` */
  className: string;
  denoiser: DenoiserArchitecture;
  /** component folder names: `unet`, `transformer`, `text_encoder`, `vae_decoder`… */
  components: readonly string[];
  /** where the smashed graphs will run (default cpu) */
  provider?: ProfileName;
  /**
   * The sizes of each component's symbolic input dims in a generate() of this size (default:
   * the pipeline's generation defaults), per ONNX folder name; known when a loaded pipeline is smashed.
   */
  shapes?: (size: { width?: number; height?: number; maxSequenceLength?: number }) => Record<string, Record<string, number>>;
}

/** What an algorithm may set on a component's onnxruntime session (a compiler's tuning). */
export type SessionTuning = Pick<SessionOptions, 'threads' | 'interOpThreads' | 'executionMode' | 'configEntries' | 'staticShapes'>;

export type Support = { ok: true } | { ok: false; reason: string };
export const supported: Support = { ok: true };
export const unsupported = (reason: string): Support => ({ ok: false, reason });

/** A component as an algorithm sees it while rewriting the component's graph. */
export interface ComponentInfo {
  /** folder name: `unet`, `transformer`, `text_encoder_2`… */
  name: string;
  /** what it does in the pipeline */
  role: 'denoiser' | 'text_encoder' | 'vae_decoder' | 'vae_encoder' | 'other';
  architecture: string;
}

/** What applying an algorithm contributes to the smashed pipeline. */
export interface Application {
  /** Rewrites a component's graph before its session is created; returns the model unchanged when it does not apply. */
  transform?(component: ComponentInfo, model: Model): Model;
  /** The module paths `transform` would change in this graph, without changing it (`smash optimize --explain`). */
  touches?(component: ComponentInfo, model: Model): string[];
  /**
   * Wraps the pipeline's denoiser (a cacher's step policy and state) once its sessions exist; also
   * called when a saved bundle loads, whose graphs are already transformed (re-arming the cacher).
   */
  wrapDenoiser?(denoiser: Denoiser): Denoiser;
  /** Session options for a component's session (ONNX folder name): static shapes, threads, spinning. */
  sessionOptions?(component: string): SessionTuning;
  /** Writes a transformed graph into a saved bundle (default: as it is); a compiler writes its optimized form. */
  writeGraph?(model: Model, file: string): Promise<void>;
  /**
   * Calibration (static quantization): the prompts to run, and the denoiser values whose ranges
   * `transform` needs, named in the graph as the preceding algorithms leave it. smash() runs the
   * prompts with those values exposed, then calls `calibrated` before any `transform`.
   */
  calibration?: {
    prompts: readonly string[];
    steps?: number;
    /** the size and text length calibration generates at (default: the pipeline's generation defaults): ranges depend on them, and so does the time calibration takes */
    generation?: { width?: number; height?: number; maxSequenceLength?: number; guidanceScale?: number };
    observe(component: ComponentInfo, model: Model): string[];
    calibrated(ranges: ReadonlyMap<string, { min: number; max: number }>): void;
  };
}

export interface Algorithm<S extends z.ZodObject = z.ZodObject> {
  readonly name: string;
  readonly kind: AlgorithmKind;
  /** one line, shown by `smash optimize --explain` */
  readonly description: string;
  /** hyperparameters: types, ranges, defaults and `.describe()` texts */
  readonly schema: S;
  supports(target: SmashTarget): Support;
  /** names of algorithms this one must run after, when both are configured (declared on one side only) */
  readonly runsAfter?: readonly string[];
  /** algorithms this one cannot be combined with, and why */
  readonly incompatibleWith?: Readonly<Record<string, string>>;
  apply(params: z.infer<S>, target: SmashTarget): Application;
}

/** Declares an algorithm with its schema's types flowing into `apply`. */
export function defineAlgorithm<S extends z.ZodObject>(a: Algorithm<S>): Algorithm<S> {
  return a;
}
