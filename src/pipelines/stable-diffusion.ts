/**
 * StableDiffusionPipeline (SD 1.x / 2.x, epsilon or v-prediction through the scheduler), following
 * diffusers 0.30's pipeline_stable_diffusion.py: CLIP last_hidden_state conditioning, CFG with
 * uncond and cond as one batch of 2 (uncond first), init_noise_sigma scaling of the initial
 * noise, decode of latents / scaling_factor, (x/2+0.5).clamp(0,1).
 */
import { f32 as hostF32, i64, type Session } from '../runtime/session.js';
import { toInt64 } from '../tokenizers/index.js';
import { Generator } from '../tensors/random.js';
import {
  afterStep, asF32, badOption, checkAbort, checkInt, checkNonNegative, checkPrompts, checkSeed, checkSize, checkTensor, concat,
  DiffusionPipeline, filled, makeScheduler, repeatRows, resolveScheduler, setSchedule,
  type Denoiser, type GenerateOptions, type GenerateResult, type PipelineSource, type SchedulerSpec,
  type TextEncoderComponent, type VaeDecoderComponent,
} from './pipeline.js';

export interface StableDiffusionComponents {
  denoiser: Denoiser;
  unetConfig: Record<string, unknown>;
  textEncoder?: TextEncoderComponent;
  vae: VaeDecoderComponent;
}

interface SdPlan {
  opts: GenerateOptions;
  prompts: string[] | null;
  negatives: string[] | null;
  batch: number;
  n: number;
  steps: number;
  guidance: number;
  cfg: boolean;
  width: number;
  height: number;
  seed: number;
  scheduler: SchedulerSpec;
  timesteps: number[];
}

export class StableDiffusionPipeline extends DiffusionPipeline {
  readonly className = 'StableDiffusionPipeline';
  denoiser: Denoiser;
  readonly sizeMultiple: number;
  readonly defaultSize: { width: number; height: number };
  readonly latentChannels: number;
  readonly crossAttentionDim: number;
  /** LCM-style UNets take a guidance-scale embedding instead of CFG */
  readonly timeCondDim: number | undefined;
  readonly textEncoder?: TextEncoderComponent;
  readonly vae: VaeDecoderComponent;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: StableDiffusionComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, sessions, onWarning);
    this.denoiser = c.denoiser;
    this.textEncoder = c.textEncoder;
    this.vae = c.vae;
    const blocks = c.vae.config.block_out_channels as unknown[];
    this.sizeMultiple = 2 ** (blocks.length - 1);
    const sample = Number(c.unetConfig.sample_size ?? 64);
    this.defaultSize = { width: sample * this.sizeMultiple, height: sample * this.sizeMultiple };
    this.latentChannels = Number(c.unetConfig.in_channels ?? 4);
    this.crossAttentionDim = Number(c.unetConfig.cross_attention_dim);
    const tc = c.unetConfig.time_cond_proj_dim;
    this.timeCondDim = typeof tc === 'number' ? tc : undefined;
  }

  protected plan(opts: GenerateOptions): SdPlan {
    const o = opts;
    if (o.pooledPromptEmbeds !== undefined) throw badOption('pooledPromptEmbeds', 'StableDiffusionPipeline takes no pooled embeddings');
    if (o.maxSequenceLength !== undefined) throw badOption('maxSequenceLength', 'applies to Flux (T5) only; CLIP takes 77 tokens');
    const steps = checkInt('steps', o.steps ?? 50, 1);
    const guidance = checkNonNegative('guidanceScale', o.guidanceScale ?? 7.5);
    const why = `the VAE's downsampling factor 2**(len(block_out_channels)-1)`;
    const width = checkSize('width', o.width ?? this.defaultSize.width, this.sizeMultiple, why);
    const height = checkSize('height', o.height ?? this.defaultSize.height, this.sizeMultiple, why);
    const n = checkInt('numImagesPerPrompt', o.numImagesPerPrompt ?? 1, 1, 4096);
    const seed = checkSeed(o.seed);
    const cfg = guidance > 1 && this.timeCondDim === undefined;

    let prompts: string[] | null = null;
    let batch: number;
    if (o.prompt !== undefined && o.promptEmbeds !== undefined) throw badOption('prompt', 'give either prompt or promptEmbeds, not both');
    if (o.promptEmbeds !== undefined) {
      const pe = checkTensor('promptEmbeds', o.promptEmbeds, [null, null, this.crossAttentionDim], 'batch, sequence, the UNet cross_attention_dim');
      batch = pe.dims[0]!;
    } else {
      if (o.prompt === undefined) throw badOption('prompt', 'give a prompt or promptEmbeds');
      prompts = checkPrompts('prompt', o.prompt);
      batch = prompts.length;
    }
    let negatives: string[] | null = null;
    if (o.negativePrompt !== undefined && o.negativePromptEmbeds !== undefined) throw badOption('negativePrompt', 'give either negativePrompt or negativePromptEmbeds, not both');
    if (o.negativePromptEmbeds !== undefined) {
      if (!o.promptEmbeds) throw badOption('negativePromptEmbeds', 'needs promptEmbeds too');
      checkTensor('negativePromptEmbeds', o.negativePromptEmbeds, o.promptEmbeds.dims, 'the shape of promptEmbeds');
    } else if (cfg) {
      negatives = o.negativePrompt === undefined ? Array(batch).fill('') : checkPrompts('negativePrompt', o.negativePrompt);
      if (negatives.length === 1 && typeof o.negativePrompt === 'string') negatives = Array(batch).fill(negatives[0]);
      if (negatives.length !== batch) throw badOption('negativePrompt', `has ${negatives.length} entries, the prompt batch ${batch}`);
    }
    if ((prompts || negatives) && !this.textEncoder) {
      throw badOption(prompts ? 'prompt' : 'negativePromptEmbeds', 'this pipeline has no text_encoder/tokenizer: pass promptEmbeds (and negativePromptEmbeds for guidance > 1)');
    }
    const f = this.sizeMultiple;
    if (o.latents !== undefined) {
      checkTensor('latents', o.latents, [batch * n, this.latentChannels, height / f, width / f], 'batch × images per prompt, UNet in_channels, height/f, width/f');
    }
    const scheduler = resolveScheduler(this.scheduler, o.scheduler);
    const s = makeScheduler(scheduler);
    setSchedule(s, steps);
    return { opts: o, prompts, negatives, batch, n, steps, guidance, cfg, width, height, seed, scheduler, timesteps: [...s.timesteps] };
  }

  /** CLIP last_hidden_state for a batch of texts, padded to `maxLength`. */
  private async encodeText(texts: string[], maxLength: number): Promise<Float32Array> {
    const te = this.textEncoder!;
    const ids: number[] = [];
    for (const t of texts) ids.push(...te.tokenizer.encode(t, { maxLength, padding: true, truncation: true, onWarning: this.onWarning }).ids);
    const out = await this.runEncoder(te.session, { input_ids: i64([texts.length, maxLength], toInt64(ids)) }, 'last_hidden_state');
    return asF32(out, 'text_encoder');
  }

  protected async execute(p: unknown): Promise<GenerateResult> {
    const plan = p as SdPlan;
    const o = plan.opts;
    const t0 = performance.now();
    const B = plan.batch * plan.n;

    // 1. text
    let cond: Float32Array;
    let seqLen: number;
    if (o.promptEmbeds) {
      cond = repeatRows(o.promptEmbeds.data, plan.batch, plan.n);
      seqLen = o.promptEmbeds.dims[1]!;
    } else {
      seqLen = this.textEncoder!.tokenizer.modelMaxLength;
      if (!Number.isFinite(seqLen)) seqLen = 77;
      cond = repeatRows(await this.encodeText(plan.prompts!, seqLen), plan.batch, plan.n);
    }
    let uncond: Float32Array | undefined;
    if (plan.cfg) {
      // diffusers pads the negative prompt to the conditioning's length
      uncond = o.negativePromptEmbeds
        ? repeatRows(o.negativePromptEmbeds.data, plan.batch, plan.n)
        : repeatRows(await this.encodeText(plan.negatives!, seqLen), plan.batch, plan.n);
    }
    const t1 = performance.now();
    checkAbort(o.signal);

    // 2. schedule and initial noise
    const scheduler = makeScheduler(plan.scheduler);
    scheduler.setTimesteps(plan.steps);
    const gen = new Generator(plan.seed);
    const f = this.sizeMultiple;
    const C = this.latentChannels;
    const h = plan.height / f;
    const w = plan.width / f;
    const latentDims = [B, C, h, w];
    let latents = o.latents ? Float32Array.from(o.latents.data) : gen.randn(B * C * h * w);
    const sigma0 = Math.fround(scheduler.initNoiseSigma);
    if (sigma0 !== 1) for (let i = 0; i < latents.length; i++) latents[i] = Math.fround(latents[i]! * sigma0);

    const D = this.crossAttentionDim;
    const context = plan.cfg
      ? hostF32([2 * B, seqLen, D], concat(uncond!, cond))
      : hostF32([B, seqLen, D], cond);
    const timestepCond = this.timeCondDim !== undefined ? guidanceScaleEmbedding(plan.guidance - 1, this.timeCondDim, B) : undefined;

    // 3. denoise
    const T = scheduler.timesteps.length;
    const stepsMs: number[] = [];
    const g = Math.fround(plan.guidance);
    for (let i = 0; i < T; i++) {
      const ts = performance.now();
      const t = scheduler.timesteps[i]!;
      const scaled = scheduler.scaleModelInput(latents, i);
      const batchN = plan.cfg ? 2 * B : B;
      const feeds: Record<string, ReturnType<typeof hostF32>> = {
        sample: hostF32([batchN, C, h, w], plan.cfg ? concat(scaled, scaled) : scaled),
        timestep: hostF32([batchN], filled(batchN, t)),
        encoder_hidden_states: context,
      };
      if (timestepCond) feeds.timestep_cond = hostF32([B, this.timeCondDim!], timestepCond);
      const out = asF32(await this.denoiser.predict(feeds, { stepIndex: i, numSteps: T, timestep: t, branch: plan.cfg ? 'cfg' : 'cond' }), 'unet');
      let noise: Float32Array;
      if (plan.cfg) {
        const half = out.length / 2;
        noise = new Float32Array(half);
        for (let k = 0; k < half; k++) {
          const u = out[k]!;
          noise[k] = Math.fround(u + Math.fround(g * Math.fround(out[half + k]! - u)));
        }
      } else noise = out;
      latents = scheduler.step(noise, i, latents, { generator: gen });
      const ms = performance.now() - ts;
      stepsMs.push(ms);
      await afterStep(o, { stepIndex: i, numSteps: T, timestep: t, latents: { dims: latentDims, data: latents }, ms });
    }
    const t2 = performance.now();

    // 4. decode
    const images = await this.decodeLatents(this.vae, latents, latentDims, 0);
    const t3 = performance.now();

    return {
      images,
      latents: { dims: latentDims, data: latents },
      seed: plan.seed,
      settings: {
        pipeline: this.className,
        prompt: plan.prompts,
        negativePrompt: plan.cfg ? (plan.negatives ?? null) : null,
        steps: plan.steps,
        guidanceScale: plan.guidance,
        width: plan.width,
        height: plan.height,
        seed: plan.seed,
        numImagesPerPrompt: plan.n,
        scheduler: { className: scheduler.className, config: scheduler.config },
        timesteps: plan.timesteps,
        latentsGiven: !!o.latents,
        promptEmbedsGiven: !!o.promptEmbeds,
      },
      timings: { totalMs: t3 - t0, textEncodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: t3 - t2, stepsMs },
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
