/**
 * Generation defaults a pipeline folder carries: `smash.json` beside model_index.json,
 * `{ "generation": { "maxSequenceLength": 32, "steps": 28, ... } }`. A small pipeline trained
 * with 32 T5 tokens draws nonsense at diffusers' default of 512; its folder says so once, and
 * every caller (CLI or library) gets it unless it passes its own value. `convert` copies the file.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { readJsonObject } from '../json.js';
import type { GenerateOptions } from './pipeline.js';

export const DEFAULTS_FILE = 'smash.json';

export type GenerationDefaults = Pick<GenerateOptions, 'steps' | 'guidanceScale' | 'width' | 'height' | 'maxSequenceLength' | 'scheduler' | 'negativePrompt'>;

const KINDS: Record<keyof GenerationDefaults, 'number' | 'string'> = {
  steps: 'number', guidanceScale: 'number', width: 'number', height: 'number', maxSequenceLength: 'number', scheduler: 'string', negativePrompt: 'string',
};

/** The defaults in `<dir>/smash.json` (none when absent); a malformed file is a ModelFormatError naming the key. */
export function readGenerationDefaults(dir: string): GenerationDefaults {
  const file = join(dir, DEFAULTS_FILE);
  if (!existsSync(file)) return {};
  const raw = readJsonObject(file, DEFAULTS_FILE, 'CONFIG_JSON');
  const gen = raw.generation ?? {};
  if (typeof gen !== 'object' || gen === null || Array.isArray(gen)) throw new ModelFormatError('CONFIG_VALUE', "'generation' must be an object", { file });
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(gen as Record<string, unknown>)) {
    const kind = KINDS[k as keyof GenerationDefaults];
    if (!kind) throw new ModelFormatError('CONFIG_VALUE', `generation.${k} is not a known default (known: ${Object.keys(KINDS).join(', ')})`, { file });
    if (typeof v !== kind || (kind === 'number' && !Number.isFinite(v))) throw new ModelFormatError('CONFIG_VALUE', `generation.${k} must be a ${kind}, got ${JSON.stringify(v)}`, { file });
    out[k] = v;
  }
  return out as GenerationDefaults;
}

/** The caller's options over the folder's defaults (an option left undefined takes the default). */
export function withDefaults(opts: GenerateOptions, defaults: GenerationDefaults): GenerateOptions {
  const merged: GenerateOptions = { ...opts };
  for (const [k, v] of Object.entries(defaults)) {
    // image-to-image takes its size from the image
    if (opts.image !== undefined && (k === 'width' || k === 'height')) continue;
    if (merged[k as keyof GenerationDefaults] === undefined) (merged as Record<string, unknown>)[k] = v;
  }
  return merged;
}
