/**
 * Which modules a quantizer touches: include/exclude globs over module paths (fnmatch-style, as
 * Pruna's target_modules), with per-architecture defaults that leave alone what Pruna leaves
 * alone for torchao plus the first and last layers.
 */
import { z } from 'zod';
import type { Graph, Node } from '../../ir/graph.js';
import { modulePath, selectNodes } from '../../ir/modules.js';
import { linearOf } from './linear.js';
import type { ComponentInfo } from '../algorithm.js';

/** Default excludes by component architecture (a component without an entry has none). */
export const DEFAULT_EXCLUDES: Readonly<Record<string, readonly string[]>> = {
  UNet2DConditionModel: ['conv_in', 'conv_out', 'time_embedding*', '*norm*'],
  FluxTransformer2DModel: ['x_embedder', 'context_embedder', 'time_text_embed*', '*norm*', 'proj_out'],
  SD3Transformer2DModel: ['pos_embed*', 'context_embedder', 'time_text_embed*', '*norm*', 'proj_out'],
  CLIPTextModel: ['*embeddings*', '*layer_norm*'],
  CLIPTextModelWithProjection: ['*embeddings*', '*layer_norm*'],
  T5EncoderModel: ['*embed*', '*layer_norm*'],
};

/** The schema fields every quantizer shares. */
const ROLES = ['denoiser', 'text_encoder', 'vae_decoder', 'vae_encoder'] as const;

export const targetFields = {
  // Pruna quantizes the denoiser; the text encoders cost fidelity for little time (shapes-flux: 59/49 dB
  // min PSNR with the denoiser alone, 34 dB with CLIP and T5 too) and the VAE overflows easily
  components: z.array(z.enum(ROLES)).default(['denoiser']).describe('which components to quantize: denoiser, text_encoder, vae_decoder, vae_encoder'),
  include: z.array(z.string()).optional().describe('module globs to quantize (default: every module of the chosen components)'),
  exclude: z.array(z.string()).optional().describe('module globs to leave alone (default: per architecture, norms, embeddings, first and last layers)'),
};

export interface Targets {
  /** component roles to touch (default: the denoiser) */
  components?: readonly string[];
  include?: readonly string[];
  exclude?: readonly string[];
}

/** The nodes of a component a quantizer may touch: none unless its role is chosen. */
export function targetNodes(graph: Graph, component: ComponentInfo, t: Targets): Node[] {
  if (!(t.components ?? ['denoiser']).includes(component.role)) return [];
  return selectNodes(graph, { include: t.include ?? ['*'], exclude: t.exclude ?? DEFAULT_EXCLUDES[component.architecture] ?? [] });
}

/** The linear layers (MatMul or Gemm by a constant weight) a quantizer would replace: its `touches`. */
export function targetLinears(graph: Graph, component: ComponentInfo, t: Targets): string[] {
  return [...new Set(targetNodes(graph, component, t).filter((n) => linearOf(n)).map(modulePath))];
}
