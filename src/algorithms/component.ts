/**
 * What a component is, for an algorithm: its class (from our builders' metadata, or for exports
 * we did not build, from Optimum's folder name and the graph's inputs and outputs) and its role.
 */
import type { Model } from '../ir/graph.js';
import type { ComponentInfo } from './algorithm.js';

const ROLES: Readonly<Record<string, ComponentInfo['role']>> = {
  UNet2DConditionModel: 'denoiser',
  FluxTransformer2DModel: 'denoiser',
  SD3Transformer2DModel: 'denoiser',
  CLIPTextModel: 'text_encoder',
  CLIPTextModelWithProjection: 'text_encoder',
  T5EncoderModel: 'text_encoder',
};

/** The class of an exported graph, told by Optimum's folder name and its IO names. */
function architectureOf(name: string, model: Model): string {
  const inputs = new Set(model.graph.inputs.map((v) => v.name));
  const outputs = new Set(model.graph.outputs.map((v) => v.name));
  if (name === 'unet') return 'UNet2DConditionModel';
  if (name === 'transformer') return inputs.has('img_ids') ? 'FluxTransformer2DModel' : 'SD3Transformer2DModel';
  if (name.startsWith('text_encoder')) {
    if (outputs.has('text_embeds')) return 'CLIPTextModelWithProjection';
    return outputs.has('pooler_output') ? 'CLIPTextModel' : 'T5EncoderModel';
  }
  if (name.startsWith('vae')) return 'AutoencoderKL';
  return '';
}

export function componentInfo(name: string, model: Model): ComponentInfo {
  const architecture = model.metadataProps.get('diffusers.class_name') ?? architectureOf(name, model);
  const role = ROLES[architecture] ?? (name.endsWith('decoder') ? 'vae_decoder' : name.endsWith('encoder') ? 'vae_encoder' : 'other');
  return { name, role, architecture };
}
