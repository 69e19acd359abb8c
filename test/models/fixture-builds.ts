import type { Model } from '../../src/ir/graph.js';
import { buildComponent } from '../../src/models/convert.js';
import { fixture } from '../helpers.js';

/** Every fixture component folder whose graphs the builders make. */
export const FIXTURE_COMPONENTS = [
  'sd15-unet-tiny', 'sdxl-unet-tiny', 'sd-vae-tiny', 'flux-vae-tiny', 'clip-text-tiny', 'clip-text-proj-tiny',
  't5-encoder-tiny', 'flux-transformer-tiny', 'sd3-transformer-tiny',
] as const;

/** The built graphs of a fixture component, keyed `<folder>` or `<folder>/<part>` (VAE encoder/decoder). */
export function buildFixture(name: string): Map<string, Model> {
  const out = new Map<string, Model>();
  for (const [part, m] of Object.entries(buildComponent(fixture('models', name)))) out.set(part === 'model' ? name : `${name}/${part}`, m);
  return out;
}
