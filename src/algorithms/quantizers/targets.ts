/**
 * Which modules a quantizer touches: include/exclude globs over module paths (fnmatch-style, as
 * Pruna's target_modules), with per-architecture defaults that leave alone what Pruna leaves
 * alone for torchao plus the first and last layers.
 */
import { z } from 'zod';
import type { Graph, Node } from '../../ir/graph.js';
import { modulePath, selectNodes } from '../../ir/modules.js';
import { constWeight2D } from './linear.js';
import type { ComponentInfo } from '../algorithm.js';

/** Default excludes by component architecture; a component absent here (the VAE) is skipped unless `include` names it. */
export const DEFAULT_EXCLUDES: Readonly<Record<string, readonly string[]>> = {
  UNet2DConditionModel: ['conv_in', 'conv_out', 'time_embedding*', '*norm*'],
  FluxTransformer2DModel: ['x_embedder', 'context_embedder', 'time_text_embed*', '*norm*', 'proj_out'],
  SD3Transformer2DModel: ['pos_embed*', 'context_embedder', 'time_text_embed*', '*norm*', 'proj_out'],
  CLIPTextModel: ['*embeddings*', '*layer_norm*'],
  CLIPTextModelWithProjection: ['*embeddings*', '*layer_norm*'],
  T5EncoderModel: ['*embed*', '*layer_norm*'],
};

/** The schema fields every quantizer shares. */
export const targetFields = {
  include: z.array(z.string()).optional().describe('module globs to quantize (default: every module of the denoiser and text encoders)'),
  exclude: z.array(z.string()).optional().describe('module globs to leave alone (default: per architecture, norms, embeddings, first and last layers)'),
};

export interface Targets {
  include?: readonly string[];
  exclude?: readonly string[];
}

/**
 * The nodes of a component a quantizer may touch, or none when the component is not a default
 * target (the VAE) and the user named no include.
 */
export function targetNodes(graph: Graph, component: ComponentInfo, t: Targets): Node[] {
  const defaults = DEFAULT_EXCLUDES[component.architecture];
  if (!defaults && !t.include) return [];
  return selectNodes(graph, { include: t.include ?? ['*'], exclude: t.exclude ?? defaults ?? [] });
}

/** The linear layers (MatMul by a constant weight) a quantizer would replace: its `touches`. */
export function targetLinears(graph: Graph, component: ComponentInfo, t: Targets): string[] {
  return [...new Set(targetNodes(graph, component, t).filter((n) => n.opType === 'MatMul' && !n.domain && constWeight2D(n)).map(modulePath))];
}
