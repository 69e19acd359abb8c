import { readJsonObject } from '../json.js';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import type { Tensor } from '../core/tensor.js';
import { SafetensorsFile } from './safetensors.js';

/**
 * A Hugging Face checkpoint: one safetensors file, or shards listed by `*.safetensors.index.json`.
 * Tensors are looked up by name and read lazily from whichever file holds them.
 */
export class Checkpoint {
  constructor(readonly files: SafetensorsFile[], private readonly where: Map<string, SafetensorsFile>, readonly source: string) {}

  /**
   * Opens a safetensors file, an index json, or a component folder (with an optional variant,
   * e.g. `fp16` for `diffusion_pytorch_model.fp16.safetensors`).
   */
  static open(path: string, variant?: string): Checkpoint {
    if (!existsSync(path)) throw new ModelFormatError('FILE_MISSING', 'no such checkpoint file or folder', { file: path });
    if (statSync(path).isDirectory()) return Checkpoint.open(findWeights(path, variant), variant);
    if (path.endsWith('.index.json')) return openIndex(path);
    const f = SafetensorsFile.open(path);
    return new Checkpoint([f], new Map(f.names.map((n) => [n, f])), path);
  }

  get names(): string[] {
    return [...this.where.keys()];
  }
  has(name: string): boolean {
    return this.where.has(name);
  }
  fileOf(name: string): string | undefined {
    return this.where.get(name)?.path;
  }
  tensor(name: string): Tensor {
    const f = this.where.get(name);
    if (!f) throw new ModelFormatError('TENSOR_MISSING', 'weight missing from the checkpoint', { file: this.source, tensor: name });
    return f.tensor(name);
  }
  /** dtype/shape without reading data */
  entry(name: string) {
    return this.where.get(name)?.entries.get(name);
  }
}

function openIndex(path: string): Checkpoint {
  const idx = readJsonObject(path, 'index', 'INDEX_JSON') as { weight_map?: Record<string, string> };
  if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new ModelFormatError('INDEX_JSON', 'index has no weight_map', { file: path });
  const dir = dirname(path);
  const files = new Map<string, SafetensorsFile>();
  const where = new Map<string, SafetensorsFile>();
  for (const [name, shard] of Object.entries(idx.weight_map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('..')) {
      throw new ModelFormatError('INDEX_JSON', `shard '${shard}' must be a file name in the same folder`, { file: path, tensor: name });
    }
    let f = files.get(shard);
    if (!f) files.set(shard, (f = SafetensorsFile.open(join(dir, shard))));
    if (!f.has(name)) throw new ModelFormatError('TENSOR_MISSING', `index maps the tensor to '${shard}', which lacks it`, { file: path, tensor: name });
    where.set(name, f);
  }
  return new Checkpoint([...files.values()], where, path);
}

/** Picks the weights of a component folder as diffusers/transformers do (variant, sharded or not). */
export function findWeights(dir: string, variant?: string): string {
  const names = readdirSync(dir);
  const stems = ['diffusion_pytorch_model', 'model'];
  const candidates: string[] = [];
  for (const stem of stems) {
    const v = variant ? `.${variant}` : '';
    candidates.push(`${stem}${v}.safetensors`, `${stem}.safetensors${v ? `.index${v}.json` : '.index.json'}`, `${stem}${v}.safetensors.index.json`);
  }
  for (const c of candidates) if (names.includes(c)) return join(dir, c);
  const any = names.filter((n) => n.endsWith('.safetensors') || n.endsWith('.safetensors.index.json'));
  const hint = any.length ? ` (found: ${any.join(', ')}${variant ? '' : '; pass a variant?'})` : '';
  throw new ModelFormatError('WEIGHTS_MISSING', `no ${variant ? `'${variant}' ` : ''}safetensors weights in ${basename(dir)}${hint}`, { file: dir });
}
