/**
 * StableDiffusionPipeline (SD 1.x / 2.x, epsilon or v-prediction through the scheduler), following
 * diffusers 0.30's pipeline_stable_diffusion.py: CLIP last_hidden_state conditioning, CFG with
 * uncond and cond as one batch of 2 (uncond first), init_noise_sigma scaling of the initial
 * noise, decode of latents / scaling_factor, (x/2+0.5).clamp(0,1).
 */
import { f32 as hostF32, type HostTensor, type Session } from '../runtime/session.js';
import type { Scheduler } from '../schedulers/index.js';
import type { Generator } from '../tensors/random.js';
import type { Branch, CfgMode, DenoiserFeeds } from './denoiser.js';
import { encoderWidth, mismatch, type LoadedComponents, type PipelineDescription } from './description.js';
import {
  asF32, badOption, checkPrompts, checkTensor, concat, DiffusionPipeline, filled, guidedPrediction, repeatRows, tokenLength,
  type Denoising, type GenerateOptions, type PipelineSource, type PlanBase, type SchedulerSpec, type StepContext,
  type TextEncoderComponent,
} from './pipeline.js';

/** CLIP last_hidden_state rows per image: the conditioning, and the unconditional one under CFG. */
export interface SdEmbeds {
  cond: Float32Array;
  uncond?: Float32Array;
  seqLen: number;
  /** SDXL: the pooled text embeddings (text_embeds) per image, and the unconditional ones under CFG */
  pooled?: Float32Array;
  uncondPooled?: Float32Array;
}

export class StableDiffusionPipeline extends DiffusionPipeline<PlanBase, SdEmbeds> {
  static readonly description: PipelineDescription<StableDiffusionPipeline> = {
    className: 'StableDiffusionPipeline',
    patchSize: 1,
    components: [
      {
        name: 'unet', role: 'denoiser', onnx: 'unet', required: true,
        inputs: ['sample', 'timestep', 'encoder_hidden_states'], optionalInputs: ['timestep_cond'], outputs: ['out_sample'],
        foreignInputs: { text_embeds: 'an SDXL UNet', time_ids: 'an SDXL UNet' },
      },
      { name: 'vae', role: 'vae_decoder', onnx: 'vae_decoder', required: true, inputs: ['latent_sample'], outputs: ['sample'] },
      { name: 'text_encoder', role: 'text_encoder', onnx: 'text_encoder', required: false, tokenizer: 'tokenizer', inputs: ['input_ids'], outputs: ['last_hidden_state'] },
    ],
    checkConfigs(configs) {
      const unet = configs.get('unet')!;
      const cross = unet.cross_attention_dim;
      const te = encoderWidth(configs.get('text_encoder'));
      if (te !== undefined && typeof cross === 'number' && te !== cross) throw mismatch('text_encoder', `hidden_size ${te} does not match the unet's cross_attention_dim ${cross}`);
    },
    create: (source, scheduler, c, sessions, onWarning) => new StableDiffusionPipeline(source, scheduler, c, sessions, onWarning),
  };

  readonly className: string = 'StableDiffusionPipeline';
  readonly crossAttentionDim: number;
  /** LCM-style UNets take a guidance-scale embedding instead of CFG */
  readonly timeCondDim: number | undefined;
  readonly textEncoder?: TextEncoderComponent;
  /** How CFG runs when a call does not say (generate's `cfgMode`): one batched call, or one per branch. */
  cfgMode: CfgMode = 'batched';
  /** steps and guidance scale when a call gives none (diffusers' __call__ defaults) */
  protected defaultSteps = 50;
  protected defaultGuidance = 7.5;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: LoadedComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, c, sessions, onWarning, { patchSize: StableDiffusionPipeline.description.patchSize, defaultSampleSize: Number(c.denoiserConfig.sample_size ?? 64) });
    this.textEncoder = c.textEncoders.get('text_encoder');
    this.crossAttentionDim = Number(c.denoiserConfig.cross_attention_dim);
    const tc = c.denoiserConfig.time_cond_proj_dim;
    this.timeCondDim = typeof tc === 'number' ? tc : undefined;
  }

  protected plan(o: GenerateOptions): PlanBase {
    if (o.pooledPromptEmbeds !== undefined) throw badOption('pooledPromptEmbeds', 'StableDiffusionPipeline takes no pooled embeddings');
    if (o.maxSequenceLength !== undefined) throw badOption('maxSequenceLength', 'applies to Flux (T5) only; CLIP takes 77 tokens');
    if (o.cfgMode !== undefined && o.cfgMode !== 'batched' && o.cfgMode !== 'split') throw badOption('cfgMode', `must be 'batched' or 'split', got ${JSON.stringify(o.cfgMode)}`);
    const c = this.planCommon(o, {
      steps: this.defaultSteps, guidance: this.defaultGuidance, embedsWidth: this.crossAttentionDim,
      embedsWhat: 'batch, sequence, the UNet cross_attention_dim', noPrompt: 'give a prompt or promptEmbeds',
    });
    const cfg = c.guidance > 1 && this.timeCondDim === undefined ? (o.cfgMode ?? this.cfgMode) : null;
    let negatives: string[] | null = null;
    if (o.negativePrompt !== undefined && o.negativePromptEmbeds !== undefined) throw badOption('negativePrompt', 'give either negativePrompt or negativePromptEmbeds, not both');
    if (o.negativePromptEmbeds !== undefined) {
      if (!o.promptEmbeds) throw badOption('negativePromptEmbeds', 'needs promptEmbeds too');
      checkTensor('negativePromptEmbeds', o.negativePromptEmbeds, o.promptEmbeds.dims, 'the shape of promptEmbeds');
    } else if (cfg) {
      negatives = o.negativePrompt === undefined ? Array(c.batch).fill('') : checkPrompts('negativePrompt', o.negativePrompt);
      if (negatives.length === 1 && typeof o.negativePrompt === 'string') negatives = Array(c.batch).fill(negatives[0]);
      if (negatives.length !== c.batch) throw badOption('negativePrompt', `has ${negatives.length} entries, the prompt batch ${c.batch}`);
    }
    if ((c.prompts || negatives) && !this.textEncoder) {
      throw badOption(c.prompts ? 'prompt' : 'negativePromptEmbeds', 'this pipeline has no text_encoder/tokenizer: pass promptEmbeds (and negativePromptEmbeds for guidance > 1)');
    }
    this.checkLatents(c);
    const schedule = this.planSchedule(o, c.steps);
    return { ...c, negatives, cfg, ...schedule, image: this.planImage(c, schedule.timesteps) };
  }

  protected async encodePrompt(plan: PlanBase): Promise<SdEmbeds> {
    const o = plan.opts;
    const rows = (x: Float32Array) => repeatRows(x, plan.batch, plan.n);
    // diffusers pads the negative prompt to the conditioning's length
    const seqLen = o.promptEmbeds ? o.promptEmbeds.dims[1]! : tokenLength(this.textEncoder!);
    const clip = (texts: string[]) => this.encodeText(this.textEncoder!, texts, seqLen, 'last_hidden_state');
    const cond = rows(o.promptEmbeds ? o.promptEmbeds.data : await clip(plan.prompts!));
    if (!plan.cfg) return { cond, seqLen };
    const uncond = rows(o.negativePromptEmbeds ? o.negativePromptEmbeds.data : await clip(plan.negatives!));
    return { cond, uncond, seqLen };
  }

  /** UNet inputs besides the text context that stay fixed for a generation (SDXL: text_embeds, time_ids); `B` images per branch. */
  protected addedConditions(_plan: PlanBase, _e: SdEmbeds, _branch: Branch, _B: number): Record<string, HostTensor> {
    return {};
  }

  protected prepareDenoising(plan: PlanBase, e: SdEmbeds, scheduler: Scheduler, generator: Generator): Denoising {
    const noise = this.initialLatents(plan, scheduler, generator, true);
    const latents = noise.data;
    const [B, C, h, w] = noise.dims as [number, number, number, number];
    const D = this.crossAttentionDim;
    const context = (b: number, data: Float32Array) => hostF32([b, e.seqLen, D], data);
    // the feeds that stay the same for the whole generation, adapted once per branch
    const fixed = (branch: Branch): DenoiserFeeds => {
      const added = this.addedConditions(plan, e, branch, B);
      if (branch === 'cfg') return this.denoiser.prepare({ encoder_hidden_states: context(2 * B, concat(e.uncond!, e.cond)), ...added });
      if (branch === 'uncond') return this.denoiser.prepare({ encoder_hidden_states: context(B, e.uncond!), ...added });
      const cond: Record<string, HostTensor> = { encoder_hidden_states: context(B, e.cond), ...added };
      if (this.timeCondDim !== undefined) cond.timestep_cond = hostF32([B, this.timeCondDim], guidanceScaleEmbedding(plan.guidance - 1, this.timeCondDim, B));
      return this.denoiser.prepare(cond);
    };
    const branches: Branch[] = plan.cfg === 'batched' ? ['cfg'] : plan.cfg === 'split' ? ['uncond', 'cond'] : ['cond'];
    const feeds = new Map(branches.map((b) => [b, fixed(b)]));
    const call = async (branch: Branch, x: Float32Array, rows: number, step: StepContext) => {
      const stepFeeds = { sample: hostF32([rows, C, h, w], x), timestep: hostF32([rows], filled(rows, step.timestep)) };
      return asF32((await this.denoiser.predict({ ...feeds.get(branch)!, ...stepFeeds }, { ...step, branch })).sample, 'unet');
    };
    return {
      latents,
      dims: noise.dims,
      predict: (x, step) => guidedPrediction(plan.cfg, plan.guidance, x, B, step, call),
      decode: async (final) => ({ images: await this.decodeLatents(this.vae, final, noise.dims, 0, plan.vaeTiling), latents: { dims: noise.dims, data: final } }),
    };
  }
}

/** diffusers' get_guidance_scale_embedding (LCM): sin/cos of (w*1000) at log-spaced frequencies, per batch row. */
export function guidanceScaleEmbedding(w: number, dim: number, batch: number): Float32Array {
  const half = Math.floor(dim / 2);
  const e = Math.fround(Math.fround(Math.log(10000)) / (half - 1)); // torch: float32 log, then divide
  const ww = Math.fround(Math.fround(w) * 1000);
  const row = new Float32Array(dim);
  for (let k = 0; k < half; k++) {
    const a = Math.fround(ww * Math.fround(Math.exp(Math.fround(k * -e))));
    row[k] = Math.sin(a);
    row[half + k] = Math.cos(a);
  }
  const out = new Float32Array(batch * dim);
  for (let b = 0; b < batch; b++) out.set(row, b * dim);
  return out;
}
