/**
 * FluxPipeline (dev with a guidance embedding, schnell without), following diffusers 0.30's
 * pipeline_flux.py: CLIP pooler_output + T5 last_hidden_state, 2×2 latent packing, image ids
 * (0, row, col), zero text ids, sigmas linspace(1, 1/n, n) shifted by mu from the packed sequence
 * length, timestep/1000, decode of latents / scaling_factor + shift_factor. No CFG.
 */
import { f32 as hostF32, i64, type Session } from '../runtime/session.js';
import { calculateShift, type Scheduler, type SetTimestepsOptions } from '../schedulers/index.js';
import { npLinspace } from '../schedulers/common.js';
import { Generator } from '../tensors/random.js';
import { toInt64 } from '../tokenizers/index.js';
import {
  afterStep, asF32, badOption, checkAbort, checkInt, checkNonNegative, checkPrompts, checkSeed, checkSize, checkTensor,
  DiffusionPipeline, filled, makeScheduler, repeatRows, resolveScheduler, setSchedule,
  type Denoiser, type FloatTensor, type GenerateOptions, type GenerateResult, type PipelineSource, type SchedulerSpec,
  type TextEncoderComponent, type VaeDecoderComponent,
} from './pipeline.js';

export interface FluxComponents {
  denoiser: Denoiser;
  transformerConfig: Record<string, unknown>;
  /** CLIP: pooled embedding */
  textEncoder?: TextEncoderComponent;
  /** T5: sequence embedding */
  textEncoder2?: TextEncoderComponent;
  vae: VaeDecoderComponent;
}

interface FluxPlan {
  opts: GenerateOptions;
  prompts: string[] | null;
  batch: number;
  n: number;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  seed: number;
  maxSequenceLength: number;
  scheduler: SchedulerSpec;
  mu: number;
  schedule: SetTimestepsOptions;
  timesteps: number[];
}

/** diffusers' FluxPipeline max_sequence_length limit */
export const FLUX_MAX_SEQUENCE_LENGTH = 512;

export class FluxPipeline extends DiffusionPipeline {
  readonly className = 'FluxPipeline';
  denoiser: Denoiser;
  /** diffusers' Flux vae_scale_factor, 2**len(block_out_channels): twice the VAE's downsampling (2×2 packing) */
  readonly sizeMultiple: number;
  readonly defaultSize: { width: number; height: number };
  readonly latentChannels: number;
  readonly jointAttentionDim: number;
  readonly pooledProjectionDim: number;
  /** true for dev-style transformers (a `guidance` graph input) */
  readonly hasGuidance: boolean;
  readonly textEncoder?: TextEncoderComponent;
  readonly textEncoder2?: TextEncoderComponent;
  readonly vae: VaeDecoderComponent;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: FluxComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, sessions, onWarning);
    this.denoiser = c.denoiser;
    this.textEncoder = c.textEncoder;
    this.textEncoder2 = c.textEncoder2;
    this.vae = c.vae;
    const blocks = c.vae.config.block_out_channels as unknown[];
    this.sizeMultiple = 2 ** blocks.length;
    // diffusers: default_sample_size (64) * vae_scale_factor
    this.defaultSize = { width: 64 * this.sizeMultiple, height: 64 * this.sizeMultiple };
    this.latentChannels = Number(c.transformerConfig.in_channels ?? 64) / 4;
    this.jointAttentionDim = Number(c.transformerConfig.joint_attention_dim);
    this.pooledProjectionDim = Number(c.transformerConfig.pooled_projection_dim);
    this.hasGuidance = c.denoiser.inputNames.includes('guidance');
  }

  protected plan(opts: GenerateOptions): FluxPlan {
    const o = opts;
    if (o.negativePrompt !== undefined) throw badOption('negativePrompt', 'FluxPipeline has no classifier-free guidance (no negative prompt)');
    if (o.negativePromptEmbeds !== undefined) throw badOption('negativePromptEmbeds', 'FluxPipeline has no classifier-free guidance (no negative prompt)');
    const steps = checkInt('steps', o.steps ?? 28, 1);
    const guidance = checkNonNegative('guidanceScale', o.guidanceScale ?? 7.0);
    const why = `Flux's vae_scale_factor 2**len(block_out_channels): the VAE's downsampling × the 2×2 packing`;
    const width = checkSize('width', o.width ?? this.defaultSize.width, this.sizeMultiple, why);
    const height = checkSize('height', o.height ?? this.defaultSize.height, this.sizeMultiple, why);
    const n = checkInt('numImagesPerPrompt', o.numImagesPerPrompt ?? 1, 1, 4096);
    const seed = checkSeed(o.seed);
    const maxSequenceLength = checkInt('maxSequenceLength', o.maxSequenceLength ?? FLUX_MAX_SEQUENCE_LENGTH, 1, FLUX_MAX_SEQUENCE_LENGTH);

    let prompts: string[] | null = null;
    let batch: number;
    if (o.prompt !== undefined && o.promptEmbeds !== undefined) throw badOption('prompt', 'give either prompt or promptEmbeds, not both');
    if (o.promptEmbeds !== undefined) {
      const pe = checkTensor('promptEmbeds', o.promptEmbeds, [null, null, this.jointAttentionDim], 'batch, sequence, the transformer joint_attention_dim');
      batch = pe.dims[0]!;
      if (o.pooledPromptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'is required with promptEmbeds (the CLIP pooled output)');
      checkTensor('pooledPromptEmbeds', o.pooledPromptEmbeds, [batch, this.pooledProjectionDim], 'batch, the transformer pooled_projection_dim');
    } else {
      if (o.pooledPromptEmbeds !== undefined) throw badOption('pooledPromptEmbeds', 'needs promptEmbeds too');
      if (o.prompt === undefined) throw badOption('prompt', 'give a prompt or promptEmbeds + pooledPromptEmbeds');
      prompts = checkPrompts('prompt', o.prompt);
      batch = prompts.length;
      if (!this.textEncoder || !this.textEncoder2) {
        throw badOption('prompt', 'this pipeline lacks text_encoder/text_encoder_2 or their tokenizers: pass promptEmbeds and pooledPromptEmbeds');
      }
    }
    const f = this.sizeMultiple / 2;
    const h = height / f;
    const w = width / f;
    if (o.latents !== undefined) {
      checkTensor('latents', o.latents, [batch * n, this.latentChannels, h, w], 'unpacked NCHW: batch × images per prompt, in_channels/4, 2·height/vae_scale_factor, 2·width/vae_scale_factor');
    }
    const scheduler = resolveScheduler(this.scheduler, o.scheduler);
    const s = makeScheduler(scheduler);
    const mu = calculateShift((h / 2) * (w / 2), s.config);
    const schedule = fluxScheduleOptions(s, steps, mu);
    setSchedule(s, steps, schedule);
    return { opts: o, prompts, batch, n, steps, guidance, width, height, seed, maxSequenceLength, scheduler, mu, schedule, timesteps: [...s.timesteps] };
  }

  protected async execute(p: unknown): Promise<GenerateResult> {
    const plan = p as FluxPlan;
    const o = plan.opts;
    const t0 = performance.now();
    const B = plan.batch * plan.n;

    // 1. text
    let seq: Float32Array;
    let pooled: Float32Array;
    let S: number;
    if (o.promptEmbeds) {
      S = o.promptEmbeds.dims[1]!;
      seq = repeatRows(o.promptEmbeds.data, plan.batch, plan.n);
      pooled = repeatRows(o.pooledPromptEmbeds!.data, plan.batch, plan.n);
    } else {
      const clip = this.textEncoder!;
      const t5 = this.textEncoder2!;
      const clipLen = Number.isFinite(clip.tokenizer.modelMaxLength) ? clip.tokenizer.modelMaxLength : 77;
      pooled = repeatRows(await this.encode(clip, plan.prompts!, clipLen, pooledOutputName(clip.session)), plan.batch, plan.n);
      S = plan.maxSequenceLength;
      seq = repeatRows(await this.encode(t5, plan.prompts!, S, 'last_hidden_state'), plan.batch, plan.n);
    }
    const t1 = performance.now();
    checkAbort(o.signal);

    // 2. latents, ids, schedule
    const C = this.latentChannels;
    const f = this.sizeMultiple / 2;
    const h = plan.height / f;
    const w = plan.width / f;
    const N = (h / 2) * (w / 2);
    const gen = new Generator(plan.seed);
    const initial = o.latents ? o.latents.data : gen.randn(B * C * h * w);
    let latents = packLatents(initial, B, C, h, w);
    const imgIds = latentImageIds(h, w);
    const scheduler = makeScheduler(plan.scheduler);
    scheduler.setTimesteps(plan.steps, plan.schedule);

    const feedsBase = {
      encoder_hidden_states: hostF32([B, S, this.jointAttentionDim], seq),
      pooled_projections: hostF32([B, this.pooledProjectionDim], pooled),
      img_ids: hostF32([N, 3], imgIds),
      txt_ids: hostF32([S, 3], new Float32Array(S * 3)),
      ...(this.hasGuidance ? { guidance: hostF32([B], filled(B, plan.guidance)) } : {}),
    };

    // 3. denoise
    const T = scheduler.timesteps.length;
    const stepsMs: number[] = [];
    const packedDims = [B, N, 4 * C];
    for (let i = 0; i < T; i++) {
      const ts = performance.now();
      const t = scheduler.timesteps[i]!;
      const x = scheduler.scaleModelInput(latents, i);
      const feeds = {
        ...feedsBase,
        hidden_states: hostF32(packedDims, x),
        timestep: hostF32([B], filled(B, Math.fround(t / 1000))),
      };
      const out = asF32(await this.denoiser.predict(feeds, { stepIndex: i, numSteps: T, timestep: t, branch: 'cond' }), 'transformer');
      latents = scheduler.step(out, i, latents, { generator: gen });
      const ms = performance.now() - ts;
      stepsMs.push(ms);
      await afterStep(o, { stepIndex: i, numSteps: T, timestep: t, latents: { dims: packedDims, data: latents }, ms });
    }
    const t2 = performance.now();

    // 4. decode
    const unpacked = unpackLatents(latents, B, C, h, w);
    const latentDims = [B, C, h, w];
    const images = await this.decodeLatents(this.vae, unpacked, latentDims, this.vae.shiftFactor);
    const t3 = performance.now();

    return {
      images,
      latents: { dims: latentDims, data: unpacked },
      seed: plan.seed,
      settings: {
        pipeline: this.className,
        prompt: plan.prompts,
        negativePrompt: null,
        steps: plan.steps,
        guidanceScale: plan.guidance,
        width: plan.width,
        height: plan.height,
        seed: plan.seed,
        numImagesPerPrompt: plan.n,
        scheduler: { className: scheduler.className, config: scheduler.config },
        timesteps: plan.timesteps,
        maxSequenceLength: o.promptEmbeds ? undefined : plan.maxSequenceLength,
        mu: plan.mu,
        latentsGiven: !!o.latents,
        promptEmbedsGiven: !!o.promptEmbeds,
      },
      timings: { totalMs: t3 - t0, textEncodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: t3 - t2, stepsMs },
    };
  }

  private async encode(te: TextEncoderComponent, texts: string[], maxLength: number, fetch: string): Promise<Float32Array> {
    const ids: number[] = [];
    for (const t of texts) ids.push(...te.tokenizer.encode(t, { maxLength, padding: true, truncation: true, onWarning: this.onWarning }).ids);
    return asF32(await this.runEncoder(te.session, { input_ids: i64([texts.length, maxLength], toInt64(ids)) }, fetch), te.name);
  }
}

/** CLIPTextModel gives pooler_output; the projection variant's pooled output is text_embeds. */
function pooledOutputName(s: Session): string {
  return s.outputNames.includes('pooler_output') ? 'pooler_output' : 'text_embeds';
}

/**
 * The Flux pipeline's setTimesteps options: diffusers passes sigmas = linspace(1, 1/n, n) (not
 * the scheduler's own linspace to 1/T) and the resolution's mu. A scheduler without custom
 * sigmas gets mu alone (diffusers would refuse it; we keep such overrides usable).
 */
export function fluxScheduleOptions(s: Scheduler, steps: number, mu: number): SetTimestepsOptions {
  return s.acceptsSigmas ? { sigmas: npLinspace(1, 1 / steps, steps), mu } : { mu };
}

/**
 * The index map of diffusers' _pack_latents ([B,C,H,W] -> [B, (H/2)(W/2), 4C]: view,
 * permute(0,2,4,1,3,5), reshape): calls `f(packed, unpacked)` for every element.
 */
function forEachPacked(B: number, C: number, H: number, W: number, f: (packed: number, unpacked: number) => void): void {
  let o = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < H / 2; i++)
      for (let j = 0; j < W / 2; j++)
        for (let c = 0; c < C; c++)
          for (let a = 0; a < 2; a++)
            for (let d = 0; d < 2; d++) f(o++, ((b * C + c) * H + 2 * i + a) * W + 2 * j + d);
}

export function packLatents(x: Float32Array, B: number, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(x.length);
  forEachPacked(B, C, H, W, (p, u) => { out[p] = x[u]!; });
  return out;
}

/** The inverse of packLatents (diffusers' _unpack_latents). */
export function unpackLatents(x: Float32Array, B: number, C: number, H: number, W: number): Float32Array {
  const out = new Float32Array(x.length);
  forEachPacked(B, C, H, W, (p, u) => { out[u] = x[p]!; });
  return out;
}

/** img_ids [(H/2)(W/2), 3]: (0, row, col) per packed token. */
export function latentImageIds(H: number, W: number): Float32Array {
  const h2 = H / 2;
  const w2 = W / 2;
  const ids = new Float32Array(h2 * w2 * 3);
  for (let i = 0; i < h2; i++)
    for (let j = 0; j < w2; j++) {
      ids[(i * w2 + j) * 3 + 1] = i;
      ids[(i * w2 + j) * 3 + 2] = j;
    }
  return ids;
}

export type { FloatTensor };
