/**
 * The CLIP towers that CLIP score and CMMD embed with: an image graph (`pixel_values` ->
 * `image_embeds`), optionally a text graph (`input_ids` -> `text_embeds`) with its tokenizer.
 * `loadClipModel` builds both from a Hugging Face CLIP folder (e.g. a local copy of
 * openai/clip-vit-large-patch14) with our own converter.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ModelFormatError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { readJsonObject } from '../json.js';
import { buildCLIPTextModel } from '../models/clip-text.js';
import { buildCLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { ModelConfig } from '../models/config.js';
import { Weights } from '../models/weights.js';
import { Session } from '../runtime/session.js';
import { Checkpoint } from '../tensors/checkpoint.js';
import { loadTokenizer, toInt64, type Tokenizer } from '../tokenizers/index.js';
import { clipPreprocess, type ClipPreprocessOptions } from './clip-preprocess.js';

export interface ClipGraphs {
  vision: Model | string;
  text?: Model | string;
  /** prompt -> ids as the text graph takes them (CLIP: 77 ids, padded) */
  tokenize?: (prompt: string) => number[];
  preprocess?: ClipPreprocessOptions;
}

export class ClipModel {
  private constructor(
    private readonly vision: Session,
    private readonly text: Session | undefined,
    private readonly tokenize: ((prompt: string) => number[]) | undefined,
    private readonly preprocess: ClipPreprocessOptions,
    readonly name: string,
  ) {}

  static async create(g: ClipGraphs, name = 'clip'): Promise<ClipModel> {
    const vision = await Session.create(g.vision);
    const text = g.text ? await Session.create(g.text) : undefined;
    return new ClipModel(vision, text, g.tokenize, g.preprocess ?? {}, name);
  }

  /** Image embeddings (one row per picture) of [N, 3, H, W] pictures in [0, 1]. */
  async embedImages(images: Float32Array, dims: readonly number[]): Promise<Float32Array[]> {
    const px = clipPreprocess(images, dims, this.preprocess);
    const out = (await this.vision.run({ pixel_values: { dtype: 'float32', dims: px.dims, data: px.data } })).outputs;
    return rows(out.image_embeds ?? Object.values(out)[0]!, 'image_embeds');
  }

  get hasText(): boolean {
    return this.text !== undefined && this.tokenize !== undefined;
  }

  /** Text embeddings (one row per prompt). */
  async embedTexts(prompts: readonly string[]): Promise<Float32Array[]> {
    if (!this.text || !this.tokenize) throw new ConfigError('CLIP_TEXT_MISSING', `the CLIP model '${this.name}' has no text tower: CLIP score needs one`, 'clip');
    const ids = prompts.map((p) => this.tokenize!(p));
    const len = ids[0]!.length;
    const out = (await this.text.run({ input_ids: { dtype: 'int64', dims: [ids.length, len], data: toInt64(ids.flat()) } })).outputs;
    return rows(out.text_embeds ?? Object.values(out)[0]!, 'text_embeds');
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.text?.release();
  }
}

function rows(t: { dims: readonly number[]; data: unknown }, what: string): Float32Array[] {
  if (t.dims.length !== 2 || !(t.data instanceof Float32Array)) throw new ModelFormatError('CLIP_OUTPUT', `the CLIP graph's ${what} must be float32 [batch, dim] (got [${t.dims.join(', ')}])`);
  const [n, d] = t.dims as [number, number];
  return Array.from({ length: n }, (_, i) => (t.data as Float32Array).slice(i * d, (i + 1) * d));
}

/**
 * A CLIP folder as transformers saves it: config.json (`CLIPModel`, or
 * `CLIPVisionModelWithProjection` for images only), safetensors weights, and for the text tower
 * vocab.json + merges.txt; preprocessor_config.json sets size, crop, mean and std when present.
 */
export async function loadClipModel(dir: string): Promise<ClipModel> {
  const config = ModelConfig.load(dir);
  const weights = new Weights(Checkpoint.open(dir), 'float32');
  const vision = buildCLIPVisionModelWithProjection(config, weights).model!;
  let text: Model | undefined;
  let tokenize: ((p: string) => number[]) | undefined;
  if (config.className === 'CLIPModel' && config.raw.text_config && typeof config.raw.text_config === 'object') {
    const textConfig = new ModelConfig({ ...(config.raw.text_config as Record<string, unknown>), architectures: ['CLIPTextModelWithProjection'], projection_dim: config.raw.projection_dim ?? 512 }, config.file);
    text = buildCLIPTextModel(textConfig, weights).model!;
    const tokenizer: Tokenizer = loadTokenizer(dir);
    const maxLength = Number((config.raw.text_config as Record<string, unknown>).max_position_embeddings ?? 77);
    tokenize = (p) => tokenizer.encode(p, { maxLength }).ids;
  }
  const pre = existsSync(join(dir, 'preprocessor_config.json')) ? readJsonObject(join(dir, 'preprocessor_config.json'), 'preprocessor_config', 'CONFIG_JSON') : {};
  const size = pre.size as { shortest_edge?: number } | number | undefined;
  const crop = pre.crop_size as { height?: number } | number | undefined;
  return ClipModel.create({
    vision,
    text,
    tokenize,
    preprocess: {
      size: typeof size === 'number' ? size : size?.shortest_edge,
      crop: typeof crop === 'number' ? crop : crop?.height,
      mean: pre.image_mean as number[] | undefined,
      std: pre.image_std as number[] | undefined,
    },
  }, dir);
}
