/**
 * StableDiffusion3Pipeline, following diffusers 0.30's pipeline_stable_diffusion_3.py: CLIP-L and
 * CLIP-G penultimate hidden states concatenated on the feature axis and zero-padded to T5's width,
 * then T5's last_hidden_state appended on the sequence axis (zeros when there is no T5); pooled =
 * both CLIP text_embeds concatenated; FlowMatch Euler with the config's shift; classifier-free
 * guidance with the negative prompt "" encoded like the prompt; the timestep fed as it is (0..1000);
 * decode of latents / scaling_factor + shift_factor.
 */
import { f32 as hostF32, type Session } from '../runtime/session.js';
import { calculateShift, type Scheduler, type SetTimestepsOptions } from '../schedulers/index.js';
import type { Generator } from '../tensors/random.js';
import type { Branch, CfgMode, DenoiserFeeds } from './denoiser.js';
import { encoderWidth, mismatch, type LoadedComponents, type PipelineDescription } from './description.js';
import {
  asF32, badOption, checkInt, checkPrompts, checkSize, checkTensor, concat, DiffusionPipeline, filled, guidedPrediction, penultimateHiddenState, repeatRows, tokenLength,
  type Denoising, type GenerateOptions, type PipelineSource, type PlanBase, type SchedulerSpec, type StepContext, type TextEncoderComponent,
} from './pipeline.js';
import { concatFeatures } from './stable-diffusion-xl.js';

interface Sd3Plan extends PlanBase {
  /** T5 tokens (maxSequenceLength) */
  t5Length: number;
}

/** Per image: [S, joint_attention_dim] context and [pooled_projection_dim] pooled, conditional and (CFG) unconditional. */
interface Sd3Embeds {
  cond: Float32Array;
  pooled: Float32Array;
  uncond?: Float32Array;
  uncondPooled?: Float32Array;
  seqLen: number;
}

/** diffusers' StableDiffusion3Pipeline default and limit of max_sequence_length */
export const SD3_DEFAULT_SEQUENCE_LENGTH = 256;
export const SD3_MAX_SEQUENCE_LENGTH = 512;

export class StableDiffusion3Pipeline extends DiffusionPipeline<Sd3Plan, Sd3Embeds> {
  static readonly description: PipelineDescription<StableDiffusion3Pipeline> = {
    className: 'StableDiffusion3Pipeline',
    patchSize: 1, // the transformer patchifies NCHW latents itself
    components: [
      {
        name: 'transformer', role: 'denoiser', onnx: 'transformer', required: true,
        inputs: ['hidden_states', 'encoder_hidden_states', 'pooled_projections', 'timestep'], outputs: ['out_hidden_states'],
        foreignInputs: { img_ids: 'a Flux transformer', txt_ids: 'a Flux transformer' },
      },
      { name: 'vae', role: 'vae_decoder', onnx: 'vae_decoder', required: true, inputs: ['latent_sample'], outputs: ['sample'] },
      { name: 'text_encoder', role: 'text_encoder', onnx: 'text_encoder', required: false, tokenizer: 'tokenizer', inputs: ['input_ids'], outputs: ['text_embeds'] },
      { name: 'text_encoder_2', role: 'text_encoder', onnx: 'text_encoder_2', required: false, tokenizer: 'tokenizer_2', inputs: ['input_ids'], outputs: ['text_embeds'] },
      { name: 'text_encoder_3', role: 'text_encoder', onnx: 'text_encoder_3', required: false, tokenizer: 'tokenizer_3', inputs: ['input_ids'], outputs: ['last_hidden_state'] },
    ],
    checkConfigs(configs) {
      const tr = configs.get('transformer')!;
      const joint = tr.joint_attention_dim;
      const l = configs.get('text_encoder');
      const g = configs.get('text_encoder_2');
      const t5 = encoderWidth(configs.get('text_encoder_3'));
      if (t5 !== undefined && typeof joint === 'number' && t5 !== joint) throw mismatch('text_encoder_3', `d_model ${t5} does not match the transformer's joint_attention_dim ${joint}`);
      const wl = encoderWidth(l);
      const wg = encoderWidth(g);
      if (wl !== undefined && wg !== undefined && typeof joint === 'number' && wl + wg > joint) {
        throw mismatch('text_encoder_2', `hidden sizes ${wl} + ${wg} (text_encoder + text_encoder_2) exceed the transformer's joint_attention_dim ${joint}`);
      }
      const pooled = tr.pooled_projection_dim;
      if (l && g && typeof pooled === 'number' && Number(l.projection_dim) + Number(g.projection_dim) !== pooled) {
        throw mismatch('text_encoder_2', `projection_dim ${l.projection_dim} + ${g.projection_dim} does not match the transformer's pooled_projection_dim ${pooled}`);
      }
    },
    create: (source, scheduler, c, sessions, onWarning) => new StableDiffusion3Pipeline(source, scheduler, c, sessions, onWarning),
  };

  readonly className = 'StableDiffusion3Pipeline';
  readonly jointAttentionDim: number;
  readonly pooledProjectionDim: number;
  /** the transformer's patch size: latent sides must be multiples of it */
  readonly transformerPatchSize: number;
  /** CLIP-L, CLIP-G (with projection), T5 (optional: zeros) */
  readonly textEncoder?: TextEncoderComponent;
  readonly textEncoder2?: TextEncoderComponent;
  readonly textEncoder3?: TextEncoderComponent;
  cfgMode: CfgMode = 'batched';
  protected override defaultStrength = 0.6; // StableDiffusion3Img2ImgPipeline's
  protected override floorInitTimestep = false;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: LoadedComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, c, sessions, onWarning, { patchSize: 1, defaultSampleSize: Number(c.denoiserConfig.sample_size ?? 128) });
    this.textEncoder = c.textEncoders.get('text_encoder');
    this.textEncoder2 = c.textEncoders.get('text_encoder_2');
    this.textEncoder3 = c.textEncoders.get('text_encoder_3');
    this.jointAttentionDim = Number(c.denoiserConfig.joint_attention_dim);
    this.pooledProjectionDim = Number(c.denoiserConfig.pooled_projection_dim);
    this.transformerPatchSize = Number(c.denoiserConfig.patch_size ?? 2);
  }

  protected plan(o: GenerateOptions): Sd3Plan {
    if (o.cfgMode !== undefined && o.cfgMode !== 'batched' && o.cfgMode !== 'split') throw badOption('cfgMode', `must be 'batched' or 'split', got ${JSON.stringify(o.cfgMode)}`);
    if (o.pooledPromptEmbeds !== undefined && o.promptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'needs promptEmbeds too');
    if (o.negativePooledPromptEmbeds !== undefined && o.negativePromptEmbeds === undefined) throw badOption('negativePooledPromptEmbeds', 'needs negativePromptEmbeds too');
    const c = this.planCommon(o, {
      steps: 28, guidance: 7.0, embedsWidth: this.jointAttentionDim,
      embedsWhat: 'batch, sequence, the transformer joint_attention_dim', noPrompt: 'give a prompt or promptEmbeds + pooledPromptEmbeds',
    });
    const m = this.vaeScale * this.transformerPatchSize;
    checkSize('width', c.width, m, `the VAE downsampling × the transformer's patch_size`);
    checkSize('height', c.height, m, `the VAE downsampling × the transformer's patch_size`);
    const t5Length = checkInt('maxSequenceLength', o.maxSequenceLength ?? SD3_DEFAULT_SEQUENCE_LENGTH, 1, SD3_MAX_SEQUENCE_LENGTH);
    const cfg = c.guidance > 1 ? (o.cfgMode ?? this.cfgMode) : null;
    if (o.promptEmbeds !== undefined) {
      if (o.pooledPromptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'is required with promptEmbeds (both CLIP text_embeds)');
      checkTensor('pooledPromptEmbeds', o.pooledPromptEmbeds, [c.batch, this.pooledProjectionDim], 'batch, the transformer pooled_projection_dim');
    }
    let negatives: string[] | null = null;
    if (o.negativePrompt !== undefined && o.negativePromptEmbeds !== undefined) throw badOption('negativePrompt', 'give either negativePrompt or negativePromptEmbeds, not both');
    if (o.negativePromptEmbeds !== undefined) {
      if (!o.promptEmbeds) throw badOption('negativePromptEmbeds', 'needs promptEmbeds too');
      checkTensor('negativePromptEmbeds', o.negativePromptEmbeds, o.promptEmbeds.dims, 'the shape of promptEmbeds');
      if (o.negativePooledPromptEmbeds === undefined) throw badOption('negativePooledPromptEmbeds', 'is required with negativePromptEmbeds');
      checkTensor('negativePooledPromptEmbeds', o.negativePooledPromptEmbeds, [c.batch, this.pooledProjectionDim], 'batch, the transformer pooled_projection_dim');
    } else if (cfg) {
      negatives = o.negativePrompt === undefined ? Array(c.batch).fill('') : checkPrompts('negativePrompt', o.negativePrompt);
      if (negatives.length === 1 && typeof o.negativePrompt === 'string') negatives = Array(c.batch).fill(negatives[0]);
      if (negatives.length !== c.batch) throw badOption('negativePrompt', `has ${negatives.length} entries, the prompt batch ${c.batch}`);
    }
    if ((c.prompts || negatives) && (!this.textEncoder || !this.textEncoder2)) {
      throw badOption(c.prompts ? 'prompt' : 'negativePrompt', 'this pipeline lacks text_encoder/text_encoder_2 or their tokenizers: pass promptEmbeds and pooledPromptEmbeds (and the negative ones for guidance > 1)');
    }
    this.checkLatents(c);
    const h = c.height / this.vaeScale;
    const w = c.width / this.vaeScale;
    const p = this.transformerPatchSize;
    // newer SD3 configs may shift by resolution, as Flux does
    const schedule = this.planSchedule(o, c.steps, (s): SetTimestepsOptions => (s.config.use_dynamic_shifting ? { mu: calculateShift((h / p) * (w / p), s.config) } : {}));
    return { ...c, negatives, cfg, t5Length, maxSequenceLength: o.promptEmbeds ? undefined : t5Length, ...schedule, image: this.planImage(c, schedule.timesteps) };
  }

  protected async encodePrompt(plan: Sd3Plan): Promise<Sd3Embeds> {
    const o = plan.opts;
    const rows = (x: Float32Array) => repeatRows(x, plan.batch, plan.n);
    const cond = o.promptEmbeds
      ? { seq: o.promptEmbeds.data, pooled: o.pooledPromptEmbeds!.data, seqLen: o.promptEmbeds.dims[1]! }
      : await this.encodeAll(plan.prompts!, plan.t5Length);
    const e: Sd3Embeds = { cond: rows(cond.seq), pooled: rows(cond.pooled), seqLen: cond.seqLen };
    if (!plan.cfg) return e;
    const neg = o.negativePromptEmbeds
      ? { seq: o.negativePromptEmbeds.data, pooled: o.negativePooledPromptEmbeds!.data }
      : await this.encodeAll(plan.negatives!, plan.t5Length);
    e.uncond = rows(neg.seq);
    e.uncondPooled = rows(neg.pooled);
    return e;
  }

  /** The three encoders on a batch of texts: [B, 77 + T, joint] context and [B, pooled] embeddings. */
  private async encodeAll(texts: string[], t5Length: number): Promise<{ seq: Float32Array; pooled: Float32Array; seqLen: number }> {
    const B = texts.length;
    const D = this.jointAttentionDim;
    const clip = async (te: TextEncoderComponent) => {
      const h = penultimateHiddenState(te);
      return this.encodeTextOutputs(te, texts, tokenLength(te), [h, 'text_embeds']).then((r) => ({ hidden: r[h]!, pooled: r.text_embeds!, S: tokenLength(te) }));
    };
    const l = await clip(this.textEncoder!);
    const g = await clip(this.textEncoder2!);
    if (l.S !== g.S) throw badOption('prompt', `tokenizer and tokenizer_2 pad to different lengths (${l.S}, ${g.S})`);
    const S = l.S;
    const clipSeq = concatFeatures(l.hidden, g.hidden, B * S); // [B, S, Dl + Dg]
    const Dc = clipSeq.length / (B * S);
    const t5 = this.textEncoder3 ? await this.encodeText(this.textEncoder3, texts, t5Length, 'last_hidden_state') : new Float32Array(B * t5Length * D);
    const seqLen = S + t5Length;
    const seq = new Float32Array(B * seqLen * D);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) seq.set(clipSeq.subarray((b * S + s) * Dc, (b * S + s + 1) * Dc), (b * seqLen + s) * D); // zero-padded to D
      seq.set(t5.subarray(b * t5Length * D, (b + 1) * t5Length * D), (b * seqLen + S) * D);
    }
    return { seq, pooled: concatFeatures(l.pooled, g.pooled, B), seqLen };
  }

  protected prepareDenoising(plan: Sd3Plan, e: Sd3Embeds, scheduler: Scheduler, generator: Generator): Denoising {
    const noise = this.initialLatents(plan, scheduler, generator, false);
    const [B, C, h, w] = noise.dims as [number, number, number, number];
    const D = this.jointAttentionDim;
    const P = this.pooledProjectionDim;
    const fixed = (branch: Branch): DenoiserFeeds => {
      const rows = branch === 'cfg' ? 2 * B : B;
      const ctx = branch === 'cfg' ? concat(e.uncond!, e.cond) : branch === 'uncond' ? e.uncond! : e.cond;
      const pooled = branch === 'cfg' ? concat(e.uncondPooled!, e.pooled) : branch === 'uncond' ? e.uncondPooled! : e.pooled;
      return this.denoiser.prepare({ encoder_hidden_states: hostF32([rows, e.seqLen, D], ctx), pooled_projections: hostF32([rows, P], pooled) });
    };
    const branches: Branch[] = plan.cfg === 'batched' ? ['cfg'] : plan.cfg === 'split' ? ['uncond', 'cond'] : ['cond'];
    const feeds = new Map(branches.map((b) => [b, fixed(b)]));
    const call = async (branch: Branch, x: Float32Array, rows: number, step: StepContext) => {
      const stepFeeds = { hidden_states: hostF32([rows, C, h, w], x), timestep: hostF32([rows], filled(rows, step.timestep)) };
      return asF32((await this.denoiser.predict({ ...feeds.get(branch)!, ...stepFeeds }, { ...step, branch })).sample, 'transformer');
    };
    return {
      latents: noise.data,
      dims: noise.dims,
      predict: (x, step) => guidedPrediction(plan.cfg, plan.guidance, x, B, step, call),
      decode: async (final) => ({ images: await this.decodeLatents(this.vae, final, noise.dims, this.vae.shiftFactor, plan.vaeTiling), latents: { dims: noise.dims, data: final } }),
    };
  }
}
