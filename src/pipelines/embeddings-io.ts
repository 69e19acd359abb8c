/**
 * Reading caller-given tensors (initial latents, prompt embeddings) from safetensors files, and
 * writing generation outputs. Keys are looked up bare, then with an `input.` or `trace.` prefix,
 * so the reference fixtures' files work as they are.
 */
import { ConfigError, ModelFormatError } from '../errors.js';
import { InMemoryTensor } from '../core/tensor.js';
import { toFloat32 } from '../core/float.js';
import { SafetensorsFile, writeSafetensors } from '../tensors/safetensors.js';
import type { FloatTensor } from './image.js';

export const EMBEDDING_KEYS = ['latents', 'prompt_embeds', 'negative_prompt_embeds', 'pooled_prompt_embeds'] as const;
export type EmbeddingKey = (typeof EMBEDDING_KEYS)[number];

const PREFIXES = ['', 'input.', 'trace.'];

/** The tensor stored under `key` (bare, `input.key` or `trace.key`), as float32; undefined when absent. */
export function findTensor(file: SafetensorsFile, key: string): FloatTensor | undefined {
  for (const p of PREFIXES) {
    const name = p + key;
    if (!file.has(name)) continue;
    const t = file.tensor(name);
    if (!['float32', 'float16', 'bfloat16', 'float64'].includes(t.dtype)) {
      throw new ModelFormatError('TENSOR_DTYPE', `expected a float tensor, got ${t.dtype}`, { file: file.path, tensor: name });
    }
    return { dims: [...t.shape], data: toFloat32(t) };
  }
  return undefined;
}

/** Reads whichever of latents / prompt_embeds / negative_prompt_embeds / pooled_prompt_embeds a file holds. */
export function readTensorsFile(path: string, keys: readonly EmbeddingKey[] = EMBEDDING_KEYS): Partial<Record<EmbeddingKey, FloatTensor>> {
  const f = SafetensorsFile.open(path);
  const out: Partial<Record<EmbeddingKey, FloatTensor>> = {};
  for (const k of keys) {
    const t = findTensor(f, k);
    if (t) out[k] = t;
  }
  return out;
}

/** The initial latents of a `--latents` file; ConfigError naming the option when the file has none. */
export function readLatentsFile(path: string): FloatTensor {
  const t = readTensorsFile(path, ['latents']).latents;
  if (!t) throw new ConfigError('LATENTS_MISSING', `--latents ${path} has no 'latents' tensor (also looked for 'input.latents', 'trace.latents')`, 'latents');
  return t;
}

/** The embeddings of a `--prompt-embeds` file: prompt_embeds is required, the others optional. */
export function readPromptEmbedsFile(path: string): { promptEmbeds: FloatTensor; negativePromptEmbeds?: FloatTensor; pooledPromptEmbeds?: FloatTensor } {
  const t = readTensorsFile(path, ['prompt_embeds', 'negative_prompt_embeds', 'pooled_prompt_embeds']);
  if (!t.prompt_embeds) {
    throw new ConfigError('PROMPT_EMBEDS_MISSING', `--prompt-embeds ${path} has no 'prompt_embeds' tensor (also looked for 'input.prompt_embeds', 'trace.prompt_embeds')`, 'promptEmbeds');
  }
  return { promptEmbeds: t.prompt_embeds, negativePromptEmbeds: t.negative_prompt_embeds, pooledPromptEmbeds: t.pooled_prompt_embeds };
}

/** Writes float tensors (e.g. `output.image`, `output.latents`) to a safetensors file, atomically. */
export function writeTensorsFile(path: string, tensors: Record<string, FloatTensor>, metadata?: Record<string, string>): void {
  const entries = Object.entries(tensors).map(([name, t]) => ({ name, tensor: new InMemoryTensor('float32', [...t.dims], t.data) }));
  writeSafetensors(path, entries, metadata);
}
