/**
 * Prompts from the command line or from files. A very long command line crashes
 * onnxruntime-node's native module (a 30 KB argument segfaulted `generate`), so prompts past
 * MAX_ARG_PROMPT characters must come from a file.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, ModelFormatError } from '../errors.js';

export const MAX_ARG_PROMPT = 4096;

/** `--<flag>` values and `--<flag>-file` contents (one prompt per file, a final newline dropped), in that order. */
export function gatherPrompts(flag: string, key: string, args: string[] | undefined, files: string[] | undefined): string[] | undefined {
  if (!args && !files) return undefined;
  for (const p of args ?? []) {
    if (p.length > MAX_ARG_PROMPT) {
      throw new ConfigError('PROMPT_TOO_LONG', `--${flag} is ${p.length} characters (at most ${MAX_ARG_PROMPT} on the command line): put it in a file and pass --${flag}-file <file>`, key);
    }
  }
  const fromFiles = (files ?? []).map((f) => {
    try {
      return readFileSync(f, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ModelFormatError('FILE_MISSING', `cannot read --${flag}-file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: f, cause: e });
    }
  });
  return [...(args ?? []), ...fromFiles];
}
