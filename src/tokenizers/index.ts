import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { ClipTokenizer } from './clip.js';
import { readJsonIfExists, type Tokenizer, type TokenizerOptions } from './common.js';
import { JsonTokenizer } from './tokenizer-json.js';

export { ClipTokenizer, cleanClipText, type ClipTokenizerData } from './clip.js';
export { JsonTokenizer, type JsonTokenizerData } from './tokenizer-json.js';
export type { EncodeOptions, Encoding, Tokenizer, TokenizerOptions } from './common.js';

/**
 * Loads the tokenizer of a pipeline folder (e.g. `tokenizer/`, `tokenizer_2/`).
 * CLIP (vocab.json + merges.txt, what SD repositories ship) unless the folder only has a
 * tokenizer.json or its tokenizer_config.json names a non-CLIP class that tokenizer.json serves.
 */
export function loadTokenizer(folder: string, opts: TokenizerOptions = {}): Tokenizer {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new ModelFormatError('FILE_MISSING', 'tokenizer folder not found', { file: folder });
  }
  const has = (name: string) => existsSync(join(folder, name));
  const config = readJsonIfExists(folder, 'tokenizer_config.json');
  const cls = typeof config?.tokenizer_class === 'string' ? config.tokenizer_class : undefined;
  const namedClip = cls !== undefined && /^CLIPTokenizer/.test(cls);
  const clipFiles = has('vocab.json') || has('merges.txt');
  if (has('tokenizer.json') && (!clipFiles || !(namedClip || cls === undefined))) {
    return JsonTokenizer.fromFolder(folder, opts);
  }
  // Names whichever of vocab.json / merges.txt is missing.
  if (clipFiles || namedClip) return ClipTokenizer.fromFolder(folder, opts);
  throw new ModelFormatError(
    'FILE_MISSING',
    'no tokenizer files: expected vocab.json + merges.txt (CLIP) or tokenizer.json',
    { file: join(folder, 'tokenizer.json') },
  );
}

/** Ids as the int64 tensor data that text encoders take. */
export function toInt64(ids: readonly number[]): BigInt64Array {
  return BigInt64Array.from(ids, (v) => BigInt(v));
}
