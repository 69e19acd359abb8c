/**
 * StableDiffusionXLPipeline, following diffusers 0.30's pipeline_stable_diffusion_xl.py: two
 * CLIP encoders whose penultimate hidden states (hidden_states[-2]) are concatenated on the
 * feature axis, the pooled `text_embeds` of the second, `time_ids` = original size + crop
 * top-left + target size ([H, W, 0, 0, H, W]), zero negative embeddings when no negative prompt
 * is given and model_index.json says `force_zeros_for_empty_prompt` (the default). The loop, CFG,
 * LCM's guidance embedding and the decode are StableDiffusionPipeline's.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonObject } from '../json.js';
import { f32 as hostF32, type HostTensor, type Session } from '../runtime/session.js';
import type { Generator } from '../tensors/random.js';
import type { Branch } from './denoiser.js';
import type { VaeTiling } from './vae-tiling.js';
import { encoderWidth, mismatch, type LoadedComponents, type PipelineDescription } from './description.js';
import {
  badOption, checkTensor, concat, penultimateHiddenState, repeatRows, tokenLength,
  type FloatTensor, type GenerateOptions, type PipelineSource, type PlanBase, type SchedulerSpec, type TextEncoderComponent, type VaeDecoderComponent,
} from './pipeline.js';
import { StableDiffusionPipeline, type SdEmbeds } from './stable-diffusion.js';

/** The UNet's added conditions per image: pooled text embeddings and 6 time ids. */
const TIME_IDS = 6;

export class StableDiffusionXLPipeline extends StableDiffusionPipeline {
  static override readonly description: PipelineDescription<StableDiffusionXLPipeline> = {
    className: 'StableDiffusionXLPipeline',
    patchSize: 1,
    components: [
      {
        name: 'unet', role: 'denoiser', onnx: 'unet', required: true,
        inputs: ['sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids'], optionalInputs: ['timestep_cond'], outputs: ['out_sample'],
      },
      { name: 'vae', role: 'vae_decoder', onnx: 'vae_decoder', required: true, inputs: ['latent_sample'], outputs: ['sample'] },
      { name: 'text_encoder', role: 'text_encoder', onnx: 'text_encoder', required: false, tokenizer: 'tokenizer', inputs: ['input_ids'], outputs: ['last_hidden_state'] },
      { name: 'text_encoder_2', role: 'text_encoder', onnx: 'text_encoder_2', required: false, tokenizer: 'tokenizer_2', inputs: ['input_ids'], outputs: ['text_embeds'] },
    ],
    checkConfigs(configs) {
      const unet = configs.get('unet')!;
      const cross = unet.cross_attention_dim;
      const te1 = encoderWidth(configs.get('text_encoder'));
      const te2 = encoderWidth(configs.get('text_encoder_2'));
      if (te1 !== undefined && te2 !== undefined && typeof cross === 'number' && te1 + te2 !== cross) {
        throw mismatch('text_encoder_2', `hidden sizes ${te1} + ${te2} (text_encoder + text_encoder_2) do not match the unet's cross_attention_dim ${cross}`);
      }
      const proj = configs.get('text_encoder_2')?.projection_dim;
      const pooled = pooledWidth(unet);
      if (typeof proj === 'number' && pooled !== undefined && proj !== pooled) {
        throw mismatch('text_encoder_2', `projection_dim ${proj} does not match the unet's text_embeds width ${pooled} (projection_class_embeddings_input_dim − 6 × addition_time_embed_dim)`);
      }
    },
    create: (source, scheduler, c, sessions, onWarning) => new StableDiffusionXLPipeline(source, scheduler, c, sessions, onWarning),
  };

  override readonly className: string = 'StableDiffusionXLPipeline';
  readonly textEncoder2?: TextEncoderComponent;
  protected override defaultStrength = 0.3; // StableDiffusionXLImg2ImgPipeline's
  /** the width of the UNet's `text_embeds` (text_encoder_2's projection_dim) */
  readonly pooledDim: number;
  /** model_index.json's force_zeros_for_empty_prompt: zero negative embeddings when no negative prompt is given */
  readonly forceZerosForEmptyPrompt: boolean;

  constructor(source: PipelineSource, scheduler: SchedulerSpec, c: LoadedComponents, sessions: Session[], onWarning: (m: string) => void) {
    super(source, scheduler, c, sessions, onWarning);
    this.textEncoder2 = c.textEncoders.get('text_encoder_2');
    this.pooledDim = pooledWidth(c.denoiserConfig) ?? Number(this.textEncoder2?.config.projection_dim ?? 1280);
    this.forceZerosForEmptyPrompt = readForceZeros(source);
  }

  protected override plan(o: GenerateOptions): PlanBase {
    const { pooledPromptEmbeds, negativePooledPromptEmbeds, ...rest } = o;
    if (o.promptEmbeds !== undefined && pooledPromptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'is required with promptEmbeds (text_encoder_2\'s text_embeds)');
    if (pooledPromptEmbeds !== undefined && o.promptEmbeds === undefined) throw badOption('pooledPromptEmbeds', 'needs promptEmbeds too');
    if (negativePooledPromptEmbeds !== undefined && o.negativePromptEmbeds === undefined) throw badOption('negativePooledPromptEmbeds', 'needs negativePromptEmbeds too');
    if (o.negativePromptEmbeds !== undefined && negativePooledPromptEmbeds === undefined) throw badOption('negativePooledPromptEmbeds', 'is required with negativePromptEmbeds');
    if (o.prompt !== undefined && (!this.textEncoder || !this.textEncoder2)) {
      throw badOption('prompt', 'this pipeline lacks text_encoder/text_encoder_2 or their tokenizers: pass promptEmbeds and pooledPromptEmbeds');
    }
    const p = super.plan(rest);
    if (pooledPromptEmbeds) checkTensor('pooledPromptEmbeds', pooledPromptEmbeds, [p.batch, this.pooledDim], 'batch, the unet\'s text_embeds width');
    if (negativePooledPromptEmbeds) checkTensor('negativePooledPromptEmbeds', negativePooledPromptEmbeds, [p.batch, this.pooledDim], 'batch, the unet\'s text_embeds width');
    const zeros = p.cfg !== null && o.negativePrompt === undefined && o.negativePromptEmbeds === undefined && this.forceZerosForEmptyPrompt;
    return { ...p, opts: o, negatives: zeros ? null : p.negatives };
  }

  protected override async encodePrompt(plan: PlanBase): Promise<SdEmbeds> {
    const o = plan.opts;
    const rows = (x: Float32Array) => repeatRows(x, plan.batch, plan.n);
    const cond = o.promptEmbeds
      ? { seq: o.promptEmbeds.data, pooled: o.pooledPromptEmbeds!.data, seqLen: o.promptEmbeds.dims[1]! }
      : await this.encodeBoth(plan.prompts!);
    const e: SdEmbeds = { cond: rows(cond.seq), pooled: rows(cond.pooled), seqLen: cond.seqLen };
    if (!plan.cfg) return e;
    if (o.negativePromptEmbeds) {
      e.uncond = rows(o.negativePromptEmbeds.data);
      e.uncondPooled = rows(o.negativePooledPromptEmbeds!.data);
    } else if (plan.negatives) {
      const neg = await this.encodeBoth(plan.negatives);
      e.uncond = rows(neg.seq);
      e.uncondPooled = rows(neg.pooled);
    } else {
      e.uncond = new Float32Array(e.cond.length);
      e.uncondPooled = new Float32Array(e.pooled!.length);
    }
    return e;
  }

  /** Both encoders on a batch of texts: [B, S, D1 + D2] penultimate hidden states and [B, P] text_embeds. */
  private async encodeBoth(texts: string[]): Promise<{ seq: Float32Array; pooled: Float32Array; seqLen: number }> {
    const te1 = this.textEncoder!;
    const te2 = this.textEncoder2!;
    const S = tokenLength(te1);
    if (tokenLength(te2) !== S) throw badOption('prompt', `tokenizer and tokenizer_2 pad to different lengths (${S}, ${tokenLength(te2)}): their embeddings cannot be concatenated`);
    const h1 = penultimateHiddenState(te1);
    const h2 = penultimateHiddenState(te2);
    const a = (await this.encodeTextOutputs(te1, texts, S, [h1]))[h1]!;
    const b = await this.encodeTextOutputs(te2, texts, S, [h2, 'text_embeds']);
    const rowsTotal = texts.length * S;
    return { seq: concatFeatures(a, b[h2]!, rowsTotal), pooled: b.text_embeds!, seqLen: S };
  }

  /**
   * A VAE config with latents_mean / latents_std (e.g. Playground v2.5): diffusers decodes
   * latents × std / scaling_factor + mean; here as the plain decode of latents × std + mean × scaling_factor.
   */
  protected override async decodeLatents(vae: VaeDecoderComponent, latents: Float32Array, dims: readonly number[], shift: number, tiling: VaeTiling | null): Promise<FloatTensor> {
    const ms = latentStats(vae.config, dims[1]!);
    if (!ms) return super.decodeLatents(vae, latents, dims, shift, tiling);
    const plane = dims[2]! * dims[3]!;
    const sf = Math.fround(vae.scalingFactor);
    const z = latents.map((v, i) => {
      const c = Math.floor(i / plane) % dims[1]!;
      return Math.fround(Math.fround(v * ms.std[c]!) + Math.fround(ms.mean[c]! * sf));
    });
    return super.decodeLatents(vae, z, dims, shift, tiling);
  }

  /** Image-to-image with latents_mean / latents_std: (z − mean) × scaling_factor / std, as StableDiffusionXLImg2ImgPipeline. */
  protected override async encodeImage(plan: PlanBase, generator: Generator): Promise<Float32Array> {
    const e = await super.encodeImage(plan, generator); // z × scaling_factor (SDXL has no shift_factor)
    const ms = latentStats(this.vae.config, this.latentChannels);
    if (!ms) return e;
    const plane = (plan.height / this.vaeScale) * (plan.width / this.vaeScale);
    const sf = Math.fround(this.vae.scalingFactor);
    return e.map((v, i) => {
      const c = Math.floor(i / plane) % this.latentChannels;
      return Math.fround(Math.fround(v - Math.fround(ms.mean[c]! * sf)) / ms.std[c]!);
    });
  }

  protected override addedConditions(plan: PlanBase, e: SdEmbeds, branch: Branch, B: number): Record<string, HostTensor> {
    // original_size + crops_coords_top_left + target_size
    const ids = [plan.height, plan.width, 0, 0, plan.height, plan.width];
    const timeIds = (rows: number) => hostF32([rows, TIME_IDS], Float32Array.from({ length: rows * TIME_IDS }, (_, i) => ids[i % TIME_IDS]!));
    const P = this.pooledDim;
    if (branch === 'cfg') return { text_embeds: hostF32([2 * B, P], concat(e.uncondPooled!, e.pooled!)), time_ids: timeIds(2 * B) };
    return { text_embeds: hostF32([B, P], branch === 'uncond' ? e.uncondPooled! : e.pooled!), time_ids: timeIds(B) };
  }
}

/** The VAE config's per-channel latents_mean and latents_std, when both are set. */
function latentStats(config: Record<string, unknown>, channels: number): { mean: number[]; std: number[] } | undefined {
  const { latents_mean: mean, latents_std: std } = config;
  const ok = (v: unknown): v is number[] => Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number');
  return ok(mean) && ok(std) ? { mean, std } : undefined;
}

/** The UNet's text_embeds width: projection_class_embeddings_input_dim − 6 × addition_time_embed_dim. */
function pooledWidth(unet: Record<string, unknown>): number | undefined {
  const total = unet.projection_class_embeddings_input_dim;
  const t = unet.addition_time_embed_dim;
  return typeof total === 'number' && typeof t === 'number' ? total - TIME_IDS * t : undefined;
}

/** [N, D1] and [N, D2] rows -> [N, D1 + D2] (torch.concat(..., dim=-1)). */
export function concatFeatures(a: Float32Array, b: Float32Array, rows: number): Float32Array {
  const d1 = a.length / rows;
  const d2 = b.length / rows;
  const out = new Float32Array(a.length + b.length);
  for (let r = 0; r < rows; r++) {
    out.set(a.subarray(r * d1, (r + 1) * d1), r * (d1 + d2));
    out.set(b.subarray(r * d2, (r + 1) * d2), r * (d1 + d2) + d1);
  }
  return out;
}

function readForceZeros(source: PipelineSource): boolean {
  for (const dir of [source.dir, source.onnxDir]) {
    const file = join(dir, 'model_index.json');
    if (!existsSync(file)) continue;
    const v = readJsonObject(file, 'model_index.json', 'CONFIG_JSON').force_zeros_for_empty_prompt;
    return v === undefined ? true : v === true;
  }
  return true;
}
