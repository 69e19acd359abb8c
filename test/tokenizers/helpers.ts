import { copyFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { tensorData } from '../../src/core/tensor.js';
import { tempDir } from '../helpers.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
export const CLIP_DIR = join(FIXTURES, 'tokenizers', 'clip');

/** An int64 tensor of a reference file as plain numbers, plus the file's metadata. */
export function loopIds(file: string, key: string): { ids: number[]; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(join(FIXTURES, 'loops', file));
  const data = tensorData(f.tensor(key)) as BigInt64Array;
  return { ids: Array.from(data, Number), metadata: f.metadata };
}

/** A scratch tokenizer folder with the given files copied from `from` and JSON files written. */
export function scratchFolder(from: string, copy: string[], json: Record<string, unknown> = {}): string {
  const dir = tempDir('smash-tok-');
  for (const name of copy) copyFileSync(join(from, name), join(dir, name));
  for (const [name, value] of Object.entries(json)) {
    writeFileSync(join(dir, name), typeof value === 'string' ? value : JSON.stringify(value));
  }
  return dir;
}
