/**
 * loadPipeline: a diffusers folder (converted on first load, cached on disk; see cache.ts) or an
 * ONNX folder in Optimum's layout (`unet/model.onnx`, `vae_decoder/model.onnx`, ...: what
 * `smash convert` writes). The pipeline class comes from model_index.json's `_class_name`.
 * Everything that can be checked from the folders (components present, text encoder widths
 * against the denoiser) is checked before any conversion or session.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, ModelFormatError } from '../errors.js';
import { readPipelineIndex } from '../models/convert.js';
import type { ProviderName } from '../runtime/providers.js';
import type { Model } from '../ir/graph.js';
import { loadModel } from '../ir/model-file.js';
import { Session, type SessionOptions } from '../runtime/session.js';
import { fuseAttention } from '../runtime/attention.js';
import { parseConfigJson } from '../schedulers/index.js';
import { loadTokenizer } from '../tokenizers/index.js';
import { ensureConverted } from './cache.js';
import { downloadPipeline, isRepoId, type HubOptions } from './hub.js';
import { readGenerationDefaults } from './defaults.js';
import { SessionDenoiser } from './denoiser.js';
import { checkLatentChannels, componentOf, type ComponentRole, type PipelineComponent, type PipelineDescription } from './description.js';
import { makeScheduler, type SchedulerSpec, type TextEncoderComponent, type VaeDecoderComponent } from './pipeline.js';
import { PIPELINE_DESCRIPTIONS, type Pipeline } from './registry.js';
import { onlyVariant } from './variant.js';

export type { Pipeline } from './registry.js';

export interface LoadPipelineOptions {
  provider?: ProviderName;
  threads?: number;
  /** cache root for converted diffusers folders (default $SMASH_CACHE or ~/.cache/smash) */
  cacheDir?: string;
  /** weight dtype of the conversion (default float32) */
  dtype?: 'float32' | 'float16';
  /** checkpoint variant of the diffusers files, e.g. fp16 */
  variant?: string;
  /** extra onnxruntime session options, for every component (over the per-component defaults) */
  session?: ComponentSessionOptions;
  /**
   * Session options of one component (its ONNX folder name and role), over `session` and the
   * defaults (`defaultSessionOptions`); return undefined to keep them.
   */
  sessionOptions?: (component: string, role: ComponentRole) => ComponentSessionOptions | undefined;
  /**
   * Low memory: each component's session exists only during its stage (text encoders while
   * encoding, the denoiser while denoising, the VAE while decoding), so peak memory is the
   * largest component plus its activations; each generate() pays the session creations.
   */
  lowMemory?: boolean;
  onWarning?: (message: string) => void;
  /** conversion progress (first load of a diffusers folder) */
  onConvertProgress?: (component: string, done: number, total: number) => void;
  /**
   * Rewrites each component's graph before its session is created (quantizers, cachers), so an
   * algorithm never needs a second load. Called once per component with its ONNX folder name
   * (`unet`, `transformer`, `vae_decoder`, `text_encoder`, ...); the returned model is what runs.
   */
  transform?: (component: string, model: Model) => Model | Promise<Model>;
  /**
   * Attention → onnxruntime's MultiHeadAttention after `transform` (default true), on CPU and
   * float32 graphs: its flash-attention kernel never writes the [B, H, S, S] scores, which
   * dominate a UNet call's memory at 512×512 (README, "Memory"). false runs the graphs as they are.
   */
  fuseAttention?: boolean;
  /** a Hub repository id (`owner/repo`, when no such local folder exists): revision, token, endpoint, cache (see hub/download.ts) */
  hub?: HubOptions;
}

export type ComponentSessionOptions = Omit<SessionOptions, 'provider' | 'onWarning'>;

/**
 * The session options a component gets unless told otherwise, chosen by measurement (README,
 * "Memory"): onnxruntime's CPU arena keeps each run's activation peak for the life of the session,
 * and without it runs take the same time.
 */
export function defaultSessionOptions(_role: ComponentRole): ComponentSessionOptions {
  return { memArena: false };
}

type Layout = 'onnx' | 'diffusers';

interface PipelineIndex {
  className: string;
  file: string;
  /** component name -> class (null: absent) */
  components: Map<string, string | null>;
}

function readIndex(root: string): PipelineIndex {
  const file = join(root, 'model_index.json');
  if (existsSync(file)) {
    const raw = readJson(file);
    const className = typeof raw._class_name === 'string' ? raw._class_name : '';
    const components = new Map(readPipelineIndex(file).map(([k, [, cls]]) => [k, cls] as [string, string | null]));
    return { className, file, components };
  }
  // an ONNX folder without model_index.json: infer from the graphs present
  const has = (p: string) => existsSync(join(root, p));
  const denoisers = PIPELINE_DESCRIPTIONS.map((d) => componentOf(d, 'denoiser').onnx);
  const desc = PIPELINE_DESCRIPTIONS.find((d) => has(`${componentOf(d, 'denoiser').onnx}/model.onnx`));
  if (!desc) throw new ModelFormatError('NOT_A_PIPELINE', `no model_index.json (and no ${[...new Set(denoisers)].map((n) => `${n}/model.onnx`).join(' or ')})`, { file: root });
  const components = new Map<string, string | null>([['scheduler', 'scheduler']]);
  for (const c of desc.components) {
    if (has(c.name) || has(c.onnx)) components.set(c.name, c.name);
    if (c.tokenizer && has(c.tokenizer)) components.set(c.tokenizer, c.tokenizer);
  }
  return { className: desc.className, file: root, components };
}

function detectLayout(root: string, desc: PipelineDescription): Layout {
  return desc.components.some((c) => existsSync(join(root, c.onnx, 'model.onnx'))) ? 'onnx' : 'diffusers';
}

/** The folder holding a component's config.json (and model.onnx in the ONNX layout). */
function componentDir(root: string, c: PipelineComponent, layout: Layout): string {
  return join(root, layout === 'onnx' ? c.onnx : c.name);
}

function readJson(file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseConfigJson(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ModelFormatError('CONFIG_JSON', `cannot read JSON (${(e as Error).message})`, { file, cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelFormatError('CONFIG_JSON', 'not a JSON object', { file });
  return v as Record<string, unknown>;
}

function missing(name: string, cls: string | null, what: string, index: PipelineIndex): ModelFormatError {
  return new ModelFormatError('COMPONENT_MISSING', `component '${name}'${cls && cls !== name ? ` (${cls})` : ''} is listed in model_index.json but ${what} is missing`, { file: index.file });
}

/** Checks a model component: its folder, config.json and (ONNX layout) model.onnx. Returns its config. */
function modelConfig(root: string, c: PipelineComponent, layout: Layout, index: PipelineIndex): Record<string, unknown> {
  const { name } = c;
  const dir = componentDir(root, c, layout);
  const cls = index.components.get(name) ?? null;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw missing(name, cls, `its folder ${dir}`, index);
  if (layout === 'onnx' && !existsSync(join(dir, 'model.onnx'))) throw missing(name, cls, `${join(dir, 'model.onnx')}`, index);
  const cfg = join(dir, 'config.json');
  if (!existsSync(cfg)) throw missing(name, cls, `${cfg}`, index);
  return readJson(cfg);
}

interface Plan {
  root: string;
  index: PipelineIndex;
  description: PipelineDescription<Pipeline>;
  layout: Layout;
  denoiserConfig: Record<string, unknown>;
  vaeConfig: Record<string, unknown>;
  /** text encoders listed with their tokenizers */
  encoders: { spec: PipelineComponent; name: string; tokenizerName: string; config: Record<string, unknown> }[];
  scheduler: SchedulerSpec;
  /** image sizes must be multiples of this */
  sizeMultiple: number;
}

/** Reads and checks a pipeline folder without converting or creating sessions. */
export function inspectPipelineFolder(dir: string): Plan {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new ModelFormatError('FILE_MISSING', 'no such pipeline folder', { file: dir });
  const index = readIndex(root);
  const description = PIPELINE_DESCRIPTIONS.find((d) => d.className === index.className);
  if (!description) {
    throw new ModelFormatError('UNSUPPORTED_PIPELINE', `pipeline class '${index.className || '(none)'}' is not supported (supported: ${PIPELINE_DESCRIPTIONS.map((d) => d.className).join(', ')})`, { file: index.file });
  }
  const layout = detectLayout(root, description);
  const need = (name: string) => {
    if (!index.components.get(name)) throw new ModelFormatError('COMPONENT_MISSING', `${index.className} needs component '${name}', which model_index.json does not list`, { file: index.file });
  };
  for (const c of description.components) if (c.required) need(c.name);
  need('scheduler');
  const configs = new Map<string, Record<string, unknown>>();
  for (const c of description.components) if (c.required) configs.set(c.name, modelConfig(root, c, layout, index));
  const vae = componentOf(description, 'vae_decoder');
  const vaeConfig = configs.get(vae.name)!;
  if (!Array.isArray(vaeConfig.block_out_channels)) throw new ModelFormatError('CONFIG_VALUE', "vae config has no block_out_channels", { file: join(componentDir(root, vae, layout), 'config.json') });

  const schedFile = join(root, 'scheduler', 'scheduler_config.json');
  if (!existsSync(schedFile)) throw missing('scheduler', index.components.get('scheduler') ?? null, schedFile, index);
  const schedRaw = readJson(schedFile);
  const scheduler: SchedulerSpec = { className: String(schedRaw._class_name ?? index.components.get('scheduler') ?? ''), config: schedRaw };
  try {
    makeScheduler(scheduler);
  } catch (e) {
    throw new ModelFormatError((e as ConfigError).code ?? 'SCHEDULER_CONFIG_INVALID', (e as Error).message, { file: schedFile, cause: e });
  }

  const encoders: Plan['encoders'] = [];
  for (const spec of description.components) {
    if (spec.role !== 'text_encoder') continue;
    const tok = spec.tokenizer!;
    const listed = !!index.components.get(spec.name);
    const tokListed = !!index.components.get(tok);
    if (tokListed && !existsSync(join(root, tok))) throw missing(tok, index.components.get(tok) ?? null, `its folder ${join(root, tok)}`, index);
    if (!listed) continue;
    const config = modelConfig(root, spec, layout, index);
    if (tokListed) {
      encoders.push({ spec, name: spec.name, tokenizerName: tok, config });
      configs.set(spec.name, config);
    }
  }
  // what the encoders give must be what the denoiser takes
  checkLatentChannels(description, configs);
  description.checkConfigs(configs, index.components);
  const denoiserConfig = configs.get(componentOf(description, 'denoiser').name)!;
  const sizeMultiple = 2 ** (vaeConfig.block_out_channels.length - 1) * description.patchSize;
  return { root, index, description, layout, denoiserConfig, vaeConfig, encoders, scheduler, sizeMultiple };
}

/**
 * Loads a pipeline. A diffusers folder is converted once into the cache and loaded from there; an
 * ONNX folder is loaded as it is. One onnxruntime session per component, created here.
 */
export async function loadPipeline(dir: string, opts: LoadPipelineOptions = {}): Promise<Pipeline> {
  const onWarning = opts.onWarning ?? ((m: string) => process.emitWarning(m));
  // `owner/repo` that is no local folder: the Hub (downloaded once into its cache)
  if (isRepoId(dir) && !existsSync(dir)) dir = await downloadPipeline(dir, { ...opts.hub, variant: opts.variant, onWarning });
  const plan = inspectPipelineFolder(dir);
  let onnxDir = plan.root;
  let cacheKey: string | undefined;
  let converted: boolean | undefined;
  if (plan.layout === 'diffusers') {
    const variant = opts.variant ?? pickVariant(plan, onWarning);
    const c = ensureConverted(plan.root, { cacheDir: opts.cacheDir, dtype: opts.dtype, variant, onProgress: opts.onConvertProgress, onWarning });
    onnxDir = c.dir;
    cacheKey = c.key;
    converted = c.converted;
  }
  const sessions: Session[] = [];
  const desc = plan.description;
  const sessionOptions = (name: string, role: ComponentRole): SessionOptions => {
    const own = { ...defaultSessionOptions(role), ...opts.session, ...opts.sessionOptions?.(name, role) };
    // `threads` for every component, else a component's own (a compiler's tuning)
    return { ...own, provider: opts.provider, threads: opts.threads ?? own.threads, onWarning };
  };
  const open = async (c: PipelineComponent) => {
    const file = join(componentDir(onnxDir, c, 'onnx'), 'model.onnx');
    const graph = await graphOf(c.onnx, file, opts);
    const s = await Session.create(graph, sessionOptions(c.onnx, c.role)).catch((e: Error) => {
      // only the load-time fusion rewrote it: a graph onnxruntime refuses after it (one Optimum-style
      // Flux export, not yet understood) runs unfused rather than not at all
      if (typeof graph === 'string' || opts.transform) throw e;
      onWarning(`${c.onnx}: onnxruntime refused the graph with fused attention (${e.message.split('\n')[0]}); it runs unfused`);
      return Session.create(file, sessionOptions(c.onnx, c.role));
    });
    sessions.push(s);
    checkGraphIO(s, c, file);
    // created once to check its graph; its stage creates it again
    if (opts.lowMemory) await s.unload();
    return s;
  };
  try {
    const denSpec = componentOf(desc, 'denoiser');
    const den = await open(denSpec);
    const denoiser = new SessionDenoiser(den, denSpec.outputs.find((o) => den.outputNames.includes(o)) ?? den.outputNames[0]!);
    const vaeSession = await open(componentOf(desc, 'vae_decoder'));
    const vae: VaeDecoderComponent = {
      session: vaeSession,
      config: plan.vaeConfig,
      scalingFactor: typeof plan.vaeConfig.scaling_factor === 'number' ? plan.vaeConfig.scaling_factor : 0.18215,
      shiftFactor: typeof plan.vaeConfig.shift_factor === 'number' ? plan.vaeConfig.shift_factor : 0,
      encoder: vaeEncoder(join(onnxDir, 'vae_encoder', 'model.onnx'), opts, sessionOptions('vae_encoder', 'vae_decoder'), sessions),
    };
    const textEncoders = new Map<string, TextEncoderComponent>();
    for (const e of plan.encoders) {
      // from the user's folder (the cache holds a copy): errors name the file the user can fix
      const tokenizer = loadTokenizer(join(plan.root, e.tokenizerName), { onWarning });
      textEncoders.set(e.name, { name: e.name, session: await open(e.spec), tokenizer, config: e.config });
    }
    const source = { dir: plan.root, onnxDir, cacheKey, converted };
    const pipe = desc.create(source, plan.scheduler, { denoiser, denoiserConfig: plan.denoiserConfig, vae, textEncoders }, sessions, onWarning);
    pipe.generationDefaults = readGenerationDefaults(plan.root);
    pipe.lowMemory = !!opts.lowMemory;
    return pipe;
  } catch (e) {
    for (const s of sessions) await s.release().catch(() => undefined);
    throw e;
  }
}

/**
 * What a component's session runs: its file as it is, or its graph after `transform` and the
 * load-time attention fusion (loaded only to look: a graph with nothing to fuse goes as its file).
 */
async function graphOf(component: string, file: string, opts: LoadPipelineOptions): Promise<Model | string> {
  let model = opts.transform ? await opts.transform(component, loadModel(file)) : undefined;
  if (opts.fuseAttention ?? true) {
    const m = model ?? loadModel(file);
    if (fuseAttention(m, opts.provider ?? 'cpu') || model) model = m;
  }
  return model ?? file;
}

/**
 * The VAE encoder (image-to-image only), opened on first use so that text-to-image loads stay as
 * they were; `transform` applies to it as to every graph, and its session is released with the rest.
 */
function vaeEncoder(file: string, opts: LoadPipelineOptions, so: SessionOptions, sessions: Session[]): (() => Promise<Session>) | undefined {
  if (!existsSync(file)) return undefined;
  let opened: Promise<Session> | undefined;
  return () => {
    opened ??= (async () => {
      const s = await Session.create(await graphOf('vae_encoder', file, opts), so);
      sessions.push(s);
      if (!s.inputNames.includes('sample') || !['latent_parameters', 'latent_sample'].some((o) => s.outputNames.includes(o))) {
        throw new ModelFormatError('COMPONENT_IO', `the vae_encoder graph must take 'sample' and give 'latent_parameters' or 'latent_sample' (it has ${s.inputNames.join(', ')} -> ${s.outputNames.join(', ')})`, { file });
      }
      return s;
    })();
    opened.catch(() => { opened = undefined; });
    return opened;
  };
}

/** A graph must take the inputs its pipeline feeds and give one of the outputs it reads. */
function checkGraphIO(s: Session, c: PipelineComponent, file: string): void {
  for (const [input, why] of Object.entries(c.foreignInputs ?? {})) {
    if (s.inputNames.includes(input)) throw new ModelFormatError('UNSUPPORTED_PIPELINE', `the ${c.name} takes '${input}' (${why}): this pipeline cannot drive it`, { file });
  }
  const absent = c.inputs.filter((i) => !s.inputNames.includes(i));
  if (absent.length) throw new ModelFormatError('COMPONENT_IO', `the ${c.name} graph lacks input${absent.length > 1 ? 's' : ''} ${absent.map((i) => `'${i}'`).join(', ')} (it has ${s.inputNames.join(', ')})`, { file });
  if (c.role !== 'denoiser' && !c.outputs.some((o) => s.outputNames.includes(o))) {
    throw new ModelFormatError('COMPONENT_IO', `the ${c.name} graph gives none of ${c.outputs.map((o) => `'${o}'`).join(', ')} (it gives ${s.outputNames.join(', ')})`, { file });
  }
}

/** The only checkpoint variant of every model component (e.g. fp16), when there is no plain one; said as a warning. */
function pickVariant(plan: Plan, onWarning: (m: string) => void): string | undefined {
  const names = [componentOf(plan.description, 'denoiser').name, 'vae', ...plan.encoders.map((e) => e.name)];
  const v = onlyVariant(names.map((n) => join(plan.root, n)));
  if (v) onWarning(`using the '${v}' weights (the only ones in ${names.join(', ')}); pass a variant to choose`);
  return v;
}
