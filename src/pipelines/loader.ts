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
import { Session, type SessionOptions } from '../runtime/session.js';
import { parseConfigJson } from '../schedulers/index.js';
import { loadTokenizer, type Tokenizer } from '../tokenizers/index.js';
import { ensureConverted } from './cache.js';
import { readGenerationDefaults } from './defaults.js';
import { onlyVariant } from './variant.js';
import { FluxPipeline } from './flux.js';
import { makeScheduler, SessionDenoiser, type SchedulerSpec, type TextEncoderComponent, type VaeDecoderComponent } from './pipeline.js';
import { StableDiffusionPipeline } from './stable-diffusion.js';

export interface LoadPipelineOptions {
  provider?: ProviderName;
  threads?: number;
  /** cache root for converted diffusers folders (default $SMASH_CACHE or ~/.cache/smash) */
  cacheDir?: string;
  /** weight dtype of the conversion (default float32) */
  dtype?: 'float32' | 'float16';
  /** checkpoint variant of the diffusers files, e.g. fp16 */
  variant?: string;
  /** extra onnxruntime session options */
  session?: Omit<SessionOptions, 'provider' | 'threads' | 'onWarning'>;
  onWarning?: (message: string) => void;
  /** conversion progress (first load of a diffusers folder) */
  onConvertProgress?: (component: string, done: number, total: number) => void;
}

export type Pipeline = StableDiffusionPipeline | FluxPipeline;

type Layout = 'onnx' | 'diffusers';

const PIPELINES: Record<string, { denoiser: string; encoders: [string, string][] }> = {
  StableDiffusionPipeline: { denoiser: 'unet', encoders: [['text_encoder', 'tokenizer']] },
  FluxPipeline: { denoiser: 'transformer', encoders: [['text_encoder', 'tokenizer'], ['text_encoder_2', 'tokenizer_2']] },
};

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
  const className = has('transformer/model.onnx') ? 'FluxPipeline' : has('unet/model.onnx') ? 'StableDiffusionPipeline' : '';
  if (!className) throw new ModelFormatError('NOT_A_PIPELINE', 'no model_index.json (and no unet/model.onnx or transformer/model.onnx)', { file: root });
  const components = new Map<string, string | null>();
  for (const name of ['unet', 'transformer', 'vae', 'text_encoder', 'tokenizer', 'text_encoder_2', 'tokenizer_2', 'scheduler']) {
    if (has(name) || (name === 'vae' && has('vae_decoder'))) components.set(name, name);
  }
  return { className, file: root, components };
}

function detectLayout(root: string): Layout {
  return ['unet', 'transformer', 'vae_decoder', 'text_encoder'].some((c) => existsSync(join(root, c, 'model.onnx'))) ? 'onnx' : 'diffusers';
}

/** The folder holding a component's config.json (and model.onnx in the ONNX layout). */
function componentDir(root: string, name: string, layout: Layout): string {
  return join(root, layout === 'onnx' && name === 'vae' ? 'vae_decoder' : name);
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
function modelConfig(root: string, name: string, layout: Layout, index: PipelineIndex): Record<string, unknown> {
  const dir = componentDir(root, name, layout);
  const cls = index.components.get(name) ?? null;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw missing(name, cls, `its folder ${dir}`, index);
  if (layout === 'onnx' && !existsSync(join(dir, 'model.onnx'))) throw missing(name, cls, `${join(dir, 'model.onnx')}`, index);
  const cfg = join(dir, 'config.json');
  if (!existsSync(cfg)) throw missing(name, cls, `${cfg}`, index);
  return readJson(cfg);
}

/** The width of a text encoder's output: CLIP hidden_size, T5 d_model. */
function hiddenSize(cfg: Record<string, unknown>): number | undefined {
  const v = cfg.hidden_size ?? cfg.d_model ?? (cfg.text_config as Record<string, unknown> | undefined)?.hidden_size;
  return typeof v === 'number' ? v : undefined;
}

function mismatch(name: string, msg: string): ConfigError {
  return new ConfigError('COMPONENT_MISMATCH', `${name}: ${msg}`, name);
}

interface Plan {
  root: string;
  index: PipelineIndex;
  layout: Layout;
  denoiserConfig: Record<string, unknown>;
  vaeConfig: Record<string, unknown>;
  encoders: { name: string; tokenizerName: string; config: Record<string, unknown> }[];
  scheduler: SchedulerSpec;
}

/** Reads and checks a pipeline folder without converting or creating sessions. */
export function inspectPipelineFolder(dir: string): Plan {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new ModelFormatError('FILE_MISSING', 'no such pipeline folder', { file: dir });
  const index = readIndex(root);
  const spec = PIPELINES[index.className];
  if (!spec) {
    throw new ModelFormatError('UNSUPPORTED_PIPELINE', `pipeline class '${index.className || '(none)'}' is not supported (supported: ${Object.keys(PIPELINES).join(', ')})`, { file: index.file });
  }
  const layout = detectLayout(root);
  const need = (name: string) => {
    if (!index.components.get(name)) throw new ModelFormatError('COMPONENT_MISSING', `${index.className} needs component '${name}', which model_index.json does not list`, { file: index.file });
  };
  for (const c of [spec.denoiser, 'vae', 'scheduler']) need(c);
  const denoiserConfig = modelConfig(root, spec.denoiser, layout, index);
  const vaeConfig = modelConfig(root, 'vae', layout, index);
  if (!Array.isArray(vaeConfig.block_out_channels)) throw new ModelFormatError('CONFIG_VALUE', "vae config has no block_out_channels", { file: join(componentDir(root, 'vae', layout), 'config.json') });

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
  for (const [te, tok] of spec.encoders) {
    const listed = !!index.components.get(te);
    const tokListed = !!index.components.get(tok);
    if (tokListed && !existsSync(join(root, tok))) throw missing(tok, index.components.get(tok) ?? null, `its folder ${join(root, tok)}`, index);
    if (!listed) continue;
    const config = modelConfig(root, te, layout, index);
    if (tokListed) encoders.push({ name: te, tokenizerName: tok, config });
  }

  // widths: what the encoders give must be what the denoiser takes
  const width = (name: string) => {
    const e = encoders.find((x) => x.name === name);
    return e ? { w: hiddenSize(e.config), e } : undefined;
  };
  if (index.className === 'StableDiffusionPipeline') {
    const cross = denoiserConfig.cross_attention_dim;
    const te = width('text_encoder');
    if (te && typeof cross === 'number' && te.w !== cross) {
      throw mismatch('text_encoder', `hidden_size ${te.w} does not match the unet's cross_attention_dim ${cross}`);
    }
    const lc = vaeConfig.latent_channels;
    if (typeof lc === 'number' && typeof denoiserConfig.in_channels === 'number' && lc !== denoiserConfig.in_channels) {
      throw mismatch('vae', `latent_channels ${lc} does not match the unet's in_channels ${denoiserConfig.in_channels}`);
    }
  } else {
    const joint = denoiserConfig.joint_attention_dim;
    const pooledDim = denoiserConfig.pooled_projection_dim;
    const t5 = width('text_encoder_2');
    if (t5 && typeof joint === 'number' && t5.w !== joint) {
      throw mismatch('text_encoder_2', `hidden size ${t5.w} does not match the transformer's joint_attention_dim ${joint}`);
    }
    const clip = width('text_encoder');
    if (clip && typeof pooledDim === 'number') {
      const projection = /WithProjection/.test(String(index.components.get('text_encoder'))) ? clip.e.config.projection_dim : clip.w;
      if (projection !== pooledDim) throw mismatch('text_encoder', `pooled width ${projection} does not match the transformer's pooled_projection_dim ${pooledDim}`);
    }
    const lc = vaeConfig.latent_channels;
    if (typeof lc === 'number' && typeof denoiserConfig.in_channels === 'number' && lc * 4 !== denoiserConfig.in_channels) {
      throw mismatch('vae', `latent_channels ${lc} × 4 (2×2 packing) does not match the transformer's in_channels ${denoiserConfig.in_channels}`);
    }
  }
  return { root, index, layout, denoiserConfig, vaeConfig, encoders, scheduler };
}

/**
 * Loads a pipeline. A diffusers folder is converted once into the cache and loaded from there; an
 * ONNX folder is loaded as it is. One onnxruntime session per component, created here.
 */
export async function loadPipeline(dir: string, opts: LoadPipelineOptions = {}): Promise<Pipeline> {
  const plan = inspectPipelineFolder(dir);
  const onWarning = opts.onWarning ?? ((m: string) => process.emitWarning(m));
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
  const so: SessionOptions = { ...opts.session, provider: opts.provider, threads: opts.threads, onWarning };
  const sessions: Session[] = [];
  const open = async (name: string) => {
    const s = await Session.create(join(componentDir(onnxDir, name, 'onnx'), 'model.onnx'), so);
    sessions.push(s);
    return s;
  };
  try {
    const spec = PIPELINES[plan.index.className]!;
    const den = await open(spec.denoiser);
    const outName = den.outputNames.includes('out_sample') ? 'out_sample' : den.outputNames.includes('out_hidden_states') ? 'out_hidden_states' : den.outputNames[0]!;
    const denoiser = new SessionDenoiser(den, outName);
    const vaeSession = await open('vae');
    const vae: VaeDecoderComponent = {
      session: vaeSession,
      config: plan.vaeConfig,
      scalingFactor: typeof plan.vaeConfig.scaling_factor === 'number' ? plan.vaeConfig.scaling_factor : 0.18215,
      shiftFactor: typeof plan.vaeConfig.shift_factor === 'number' ? plan.vaeConfig.shift_factor : 0,
    };
    const encoders = new Map<string, TextEncoderComponent>();
    for (const e of plan.encoders) {
      // from the user's folder (the cache holds a copy): errors name the file the user can fix
      const tokenizer: Tokenizer = loadTokenizer(join(plan.root, e.tokenizerName), { onWarning });
      encoders.set(e.name, { name: e.name, session: await open(e.name), tokenizer, config: e.config });
    }
    const source = { dir: plan.root, onnxDir, cacheKey, converted };
    let pipe: Pipeline;
    if (plan.index.className === 'StableDiffusionPipeline') {
      checkUnetInputs(den, plan.denoiserConfig);
      pipe = new StableDiffusionPipeline(source, plan.scheduler, { denoiser, unetConfig: plan.denoiserConfig, textEncoder: encoders.get('text_encoder'), vae }, sessions, onWarning);
    } else pipe = new FluxPipeline(
      source, plan.scheduler,
      { denoiser, transformerConfig: plan.denoiserConfig, textEncoder: encoders.get('text_encoder'), textEncoder2: encoders.get('text_encoder_2'), vae },
      sessions, onWarning,
    );
    pipe.generationDefaults = readGenerationDefaults(plan.root);
    return pipe;
  } catch (e) {
    for (const s of sessions) await s.release().catch(() => undefined);
    throw e;
  }
}

/** The only checkpoint variant of every model component (e.g. fp16), when there is no plain one; said as a warning. */
function pickVariant(plan: Plan, onWarning: (m: string) => void): string | undefined {
  const spec = PIPELINES[plan.index.className]!;
  const names = [spec.denoiser, 'vae', ...plan.encoders.map((e) => e.name)];
  const v = onlyVariant(names.map((n) => join(plan.root, n)));
  if (v) onWarning(`using the '${v}' weights (the only ones in ${names.join(', ')}); pass a variant to choose`);
  return v;
}

function checkUnetInputs(s: Session, cfg: Record<string, unknown>): void {
  for (const extra of ['text_embeds', 'time_ids']) {
    if (s.inputNames.includes(extra)) {
      throw new ModelFormatError('UNSUPPORTED_PIPELINE', `the unet takes '${extra}' (an SDXL UNet): StableDiffusionPipeline cannot drive it`, { file: String(cfg._class_name ?? 'unet') });
    }
  }
}
