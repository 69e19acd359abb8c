import type { Model } from '../../src/ir/graph.js';
import type { HostTensor } from '../../src/runtime/session.js';
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

/** Sizes for the symbolic input dims, consistent across inputs. */
export const SIZES: Record<string, number> = {
  batch_size: 2, steps: 2, height: 16, width: 16, latent_height: 4, latent_width: 4, sequence_length: 5, packed_height_width: 16,
};

export function feedsFor(model: Model): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const v of model.graph.inputs) {
    const dims = v.shape!.map((d) => (typeof d === 'number' ? d : SIZES[d as string]!));
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[v.name] = v.dtype === 'int64'
      ? { dtype: 'int64', dims, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 7)) }
      : { dtype: 'float32', dims, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5) };
  }
  return feeds;
}
