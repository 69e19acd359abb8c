/**
 * Which modules of each diffusers denoiser are its repeating blocks (module-path globs for
 * ir/blocks.ts), so builders record them and imported exports of the same classes get them too.
 */
import { deriveBlocks, readBlocks, recordBlocks, type BlockRecord } from '../ir/blocks.js';
import type { Model } from '../ir/graph.js';

const UNET = [
  'down_blocks.*', 'mid_block', 'up_blocks.*',
  'down_blocks.*.resnets.*', 'down_blocks.*.attentions.*', 'mid_block.resnets.*', 'mid_block.attentions.*',
  'up_blocks.*.resnets.*', 'up_blocks.*.attentions.*',
];

/** Block patterns by diffusers class name. */
export const BLOCK_PATTERNS: Readonly<Record<string, readonly string[]>> = {
  FluxTransformer2DModel: [
    'transformer_blocks.*', 'single_transformer_blocks.*',
    // FORA's cut points: each block's attention and feed-forward outputs
    'transformer_blocks.*.attn', 'transformer_blocks.*.ff', 'transformer_blocks.*.ff_context',
    'single_transformer_blocks.*.attn',
  ],
  SD3Transformer2DModel: [
    'transformer_blocks.*',
    'transformer_blocks.*.attn', 'transformer_blocks.*.ff', 'transformer_blocks.*.ff_context',
  ],
  UNet2DConditionModel: UNET,
};

/**
 * The block patterns for a model: by its `diffusers.class_name` metadata when it has one we
 * know; otherwise (an Optimum or PyTorch export) every known pattern that finds a block.
 */
export function blockPatternsFor(model: Model): string[] {
  const cls = model.metadataProps.get('diffusers.class_name');
  if (cls && BLOCK_PATTERNS[cls]) return [...BLOCK_PATTERNS[cls]!];
  const all = [...new Set(Object.values(BLOCK_PATTERNS).flat())];
  const found = new Set(deriveBlocks(model, all).map((b) => b.pattern));
  return all.filter((p) => found.has(p));
}

/** Records the denoiser's blocks in its metadata (builders call this last). */
export function recordDenoiserBlocks(model: Model): BlockRecord[] {
  return recordBlocks(model, blockPatternsFor(model));
}

/** The model's block records: the stored ones, else derived from its module paths. */
export function modelBlocks(model: Model): BlockRecord[] {
  return readBlocks(model) ?? deriveBlocks(model, blockPatternsFor(model));
}
