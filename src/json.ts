import { readFileSync } from 'node:fs';
import { ModelFormatError } from './errors.js';

/**
 * Reads a JSON file that must hold an object (configs, indexes, tokenizer files). An unreadable
 * file is FILE_MISSING; bad JSON or another JSON value is `invalidCode`; both name the file.
 * `parse` replaces JSON.parse (scheduler configs may hold Python's NaN/Infinity).
 */
export function readJsonObject(file: string, what: string, invalidCode: string, parse: (text: string) => unknown = JSON.parse): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelFormatError('FILE_MISSING', `cannot read ${what}: ${(e as Error).message}`, { file, cause: e });
  }
  let v: unknown;
  try {
    v = parse(text);
  } catch (e) {
    throw new ModelFormatError(invalidCode, `${what} is not valid JSON (${(e as Error).message})`, { file, cause: e });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ModelFormatError(invalidCode, `${what} is not a JSON object`, { file });
  return v as Record<string, unknown>;
}
