/**
 * FluxPipeline (dev with a guidance embedding, schnell without), following diffusers 0.30's
 * pipeline_flux.py: CLIP pooler_output + T5 last_hidden_state, 2×2 latent packing, image ids
 * (0, row, col), zero text ids, sigmas linspace(1, 1/n, n) shifted by mu from the packed sequence
 * length, timestep/1000, decode of latents / scaling_factor + shift_factor. No CFG.
 */
import { f32 as hostF32, type Session } from '../runtime/session.js';
import { calculateShift, type Scheduler, type SetTimestepsOptions } from '../schedulers/index.js';
import { npLinspace } from '../schedulers/common.js';
import type { Generator } from '../tensors/random.js';
import { encoderWidth, mismatch, type LoadedComponents, type PipelineDescription } from './description.js';
import {
  asF32, badOption, checkInt, checkTensor, DiffusionPipeline, filled, repeatRows, tokenLength,
  type Denoising, type FloatTensor, type GenerateOptions, type PipelineSource, type PlanBase, type SchedulerSpec,
  type TextEncoderComponent,
} from './pipeline.js';

interface FluxPlan extends PlanBase {
  /** T5 tokens (maxSequenceLength) */
  t5Length: number;
  mu: number;
}

/** Per image: T5 last_hidden_state [S, joint_attention_dim] and CLIP pooled [pooled_projection_dim]. */
interface FluxEmbeds {
  seq: Float32Array;
  pooled: Float32Array;
  seqLen: number;
}

/** The pooled CLIP output: CLIPTextModel's pooler_output, or CLIPTextModelWithProjection's text_embeds. */
const CLIP_POOLED = ['pooler_output', 'text_embeds'];

/** diffusers' FluxPipeline max_sequence_length limit */
export const FLUX_MAX_SEQUENCE_LENGTH = 512;

export class FluxPipeline extends DiffusionPipeline<FluxPlan, FluxEmbeds> {
  static readonly description: PipelineDescription<FluxPipeline> = {
    className: 'FluxPipeline',
    patchSize: 2, // 2×2 latent patches per token
    components: [
      {
        name: 'transformer', role: 'denoiser', onnx: 'transformer', required: true,
        inputs: ['hidden_states', 'encoder_hidden_states', 'pooled_projections', 'timestep', 'img_ids', 'txt_ids'], optionalInputs: ['guidance'],
        outputs: ['out_hidden_states'],
      },
      { name: 'vae', role: 'vae_decoder', onnx: 'vae_decoder', required: true, inputs: ['latent_sample'], outputs: ['sample'] },
      { name: 'text_encoder', role: 'text_encoder', onnx: 'text_encoder', required: false, tokenizer: 'tokenizer', inputs: ['input_ids'], outputs: CLIP_POOLED },
      { name: 'text_encoder_2', role: 'text_encoder', onnx: 'text_encoder_2', required: false, tokenizer: 'tokenizer_2', inputs: ['input_ids'], outputs: ['last_hidden_state'] },
    ],
    checkConfigs(configs, classes) {
      const tr = configs.get('transformer')!;
      const joint = tr.joint_attention_dim;
      const t5 = encoderWidth(configs.get('text_encoder_2'));
      if (t5 !== undefined && typeof joint === 'number' && t5 !== joint) throw mismatch('text_encoder_2', `hidden size ${t5} does not match the transformer's joint_attention_dim ${joint}`);
      const clip = configs.get('text_encoder');
      const pooledDim = tr.pooled_projection_dim;
      if (clip && typeof pooledDim === 'number') {
        const projection = /WithProjection/.test(String(classes.get('text_encoder'))) ? clip.projection_dim : encoderWidth(clip);
        if (projection !== pooledDim) throw mismatch('text_encoder', `pooled width ${projection} does not match the transformer's pooled_projection_dim ${pooledDim}`);
      }
    },
    create: (source, scheduler, c, sessions, onWarning) => new FluxPipeline(source, scheduler, c, sessions, onWarning),
  };

  readonly className = 'FluxPipeline';
  protected override defaultStrength = 0.6; // FluxImg2ImgPipeline's
  protected override floorInitTimestep = false;
  readonly jointAttentionDim: number;
  readonly pooledProjectionDim: number;
  /** true for dev-style transformers (a `guidance` graph input) */
  readonly hasGuidance: boolean;
  /** CLIP: pooled embedding */
  readonly textEncoder?: TextEncoderComponent;
  /** T5: sequence embedding */
  readonly textEncoder2?: TextEncoderComponent;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: LoadedComponents, sessions: Session[], onWarning: (m: string) => void) {
    // diffusers: default_sample_size 128 latents; sizes are multiples of vae_scale_factor × 2 (2×2 packing)
    super(source, scheduler, c, sessions, onWarning, { patchSize: FluxPipeline.description.patchSize, defaultSampleSize: 128 });
    this.textEncoder = c.textEncoders.get('text_encoder');
    this.textEncoder2 = c.textEncoders.get('text_encoder_2');
    this.jointAttentionDim = Number(c.denoiserConfig.joint_attention_dim);
    this.pooledProjectionDim = Number(c.denoiserConfig.pooled_projection_dim);
    this.hasGuidance = c.denoiser.inputNames.includes('guidance');
  }

  protected plan(o: GenerateOptions): FluxPlan {
    for (const k of ['negativePrompt', 'negativePromptEmbeds', 'cfgMode'] as const) {
      if (o[k] !== undefined) throw badOption(k, 'FluxPipeline has no classifier-free guidance (no negative prompt)');
    }
    if (o.pooledPromptEmbeds !== undefined && o.promptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'needs promptEmbeds too');
    const c = this.planCommon(o, {
      steps: 28, guidance: 7.0, embedsWidth: this.jointAttentionDim,
      embedsWhat: 'batch, sequence, the transformer joint_attention_dim', noPrompt: 'give a prompt or promptEmbeds + pooledPromptEmbeds',
    });
    const t5Length = checkInt('maxSequenceLength', o.maxSequenceLength ?? FLUX_MAX_SEQUENCE_LENGTH, 1, FLUX_MAX_SEQUENCE_LENGTH);
    if (o.promptEmbeds !== undefined) {
      if (o.pooledPromptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'is required with promptEmbeds (the CLIP pooled output)');
      checkTensor('pooledPromptEmbeds', o.pooledPromptEmbeds, [c.batch, this.pooledProjectionDim], 'batch, the transformer pooled_projection_dim');
    } else if (!this.textEncoder || !this.textEncoder2) {
      throw badOption('prompt', 'this pipeline lacks text_encoder/text_encoder_2 or their tokenizers: pass promptEmbeds and pooledPromptEmbeds');
    }
    this.checkLatents(c);
    const h = c.height / this.vaeScale;
    const w = c.width / this.vaeScale;
    let mu = 0;
    const schedule = this.planSchedule(o, c.steps, (s) => {
      mu = calculateShift((h / 2) * (w / 2), s.config);
      return fluxScheduleOptions(s, c.steps, mu);
    });
    return { ...c, negatives: null, cfg: null, t5Length, maxSequenceLength: o.promptEmbeds ? undefined : t5Length, mu, ...schedule, image: this.planImage(c, schedule.timesteps) };
  }

  protected async encodePrompt(plan: FluxPlan): Promise<FluxEmbeds> {
    const o = plan.opts;
    const rows = (x: Float32Array) => repeatRows(x, plan.batch, plan.n);
    if (o.promptEmbeds) return { seqLen: o.promptEmbeds.dims[1]!, seq: rows(o.promptEmbeds.data), pooled: rows(o.pooledPromptEmbeds!.data) };
    const clip = this.textEncoder!;
    const pooled = rows(await this.encodeText(clip, plan.prompts!, tokenLength(clip), CLIP_POOLED.find((n) => clip.session.outputNames.includes(n))!));
    const seq = rows(await this.encodeText(this.textEncoder2!, plan.prompts!, plan.t5Length, 'last_hidden_state'));
    return { seqLen: plan.t5Length, seq, pooled };
  }

  protected prepareDenoising(plan: FluxPlan, e: FluxEmbeds, scheduler: Scheduler, generator: Generator): Denoising {
    const noise = this.initialLatents(plan, scheduler, generator, false);
    const [B, C, h, w] = noise.dims as [number, number, number, number];
    const N = (h / 2) * (w / 2);
    const S = e.seqLen;
    const fixed = this.denoiser.prepare({
      encoder_hidden_states: hostF32([B, S, this.jointAttentionDim], e.seq),
      pooled_projections: hostF32([B, this.pooledProjectionDim], e.pooled),
      img_ids: hostF32([N, 3], latentImageIds(h, w)),
      txt_ids: hostF32([S, 3], new Float32Array(S * 3)),
      ...(this.hasGuidance ? { guidance: hostF32([B], filled(B, plan.guidance)) } : {}),
    });
    const packedDims = [B, N, 4 * C];
    return {
      latents: packLatents(noise.data, B, C, h, w),
      dims: packedDims,
      predict: async (x, step) => {
        const feeds = { ...fixed, hidden_states: hostF32(packedDims, x), timestep: hostF32([B], filled(B, Math.fround(step.timestep / 1000))) };
        return asF32((await this.denoiser.predict(feeds, { ...step, branch: 'cond' })).sample, 'transformer');
      },
      decode: async (final) => {
        const unpacked = unpackLatents(final, B, C, h, w);
        return { images: await this.decodeLatents(this.vae, unpacked, noise.dims, this.vae.shiftFactor, plan.vaeTiling), latents: { dims: noise.dims, data: unpacked } };
      },
    };
  }
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
