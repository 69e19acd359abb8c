/** The SmashTarget of a diffusers or ONNX folder: a pipeline (model_index.json) or one component (config.json). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonObject } from '../json.js';
import type { DenoiserArchitecture, SmashTarget } from '../algorithms/algorithm.js';

const DENOISERS: Readonly<Record<string, DenoiserArchitecture>> = {
  UNet2DConditionModel: 'unet',
  FluxTransformer2DModel: 'flux',
  SD3Transformer2DModel: 'sd3',
};

export function folderTarget(dir: string, provider: SmashTarget['provider'] = 'cpu'): SmashTarget {
  const index = join(dir, 'model_index.json');
  if (existsSync(index)) {
    const raw = readJsonObject(index, 'model_index.json', 'CONFIG_JSON');
    const components = Object.entries(raw).filter(([k, v]) => !k.startsWith('_') && Array.isArray(v) && v[1]);
    const classes = components.map(([, v]) => String((v as unknown[])[1]));
    const denoiser = classes.map((c) => DENOISERS[c]).find(Boolean) ?? (raw._class_name === 'FluxPipeline' ? 'flux' : raw._class_name === 'StableDiffusion3Pipeline' ? 'sd3' : 'unet');
    return { className: String(raw._class_name ?? ''), denoiser, components: components.map(([k]) => k), provider };
  }
  const cls = String(readJsonObject(join(dir, 'config.json'), 'config.json', 'CONFIG_JSON')._class_name ?? '');
  return { className: cls, denoiser: DENOISERS[cls] ?? 'unet', components: ['model'], provider };
}
