import { readJsonObject } from '../json.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

/** How to encode a prompt; the defaults are what the diffusers pipelines do. */
export interface EncodeOptions {
  /** Total length including special tokens. Default: the tokenizer's `modelMaxLength`. */
  maxLength?: number;
  /** Pad with the pad token up to `maxLength` (`padding="max_length"`). Default true. */
  padding?: boolean;
  /** Cut to `maxLength`, keeping the special tokens (eos stays last). Default true. */
  truncation?: boolean;
  /** Called when truncation drops tokens; overrides the tokenizer's own `onWarning`. */
  onWarning?: (message: string) => void;
}

export interface Encoding {
  /** Token ids, special tokens included, padded when asked. */
  ids: number[];
  /** 1 for real tokens (special ones included), 0 for padding. */
  attentionMask: number[];
  /** Number of tokens truncation dropped (0 when none). */
  truncatedTokens: number;
  /** The dropped part of the prompt, decoded; '' when nothing was dropped. */
  truncatedText: string;
}

export interface Tokenizer {
  /** 'clip': vocab.json + merges.txt; 'tokenizer-json': a tokenizer.json (T5 and others). */
  readonly kind: 'clip' | 'tokenizer-json';
  /** `tokenizer_class` from tokenizer_config.json, when given. */
  readonly tokenizerClass: string | undefined;
  /** model_max_length (77 for CLIP); Infinity when the folder does not say. */
  readonly modelMaxLength: number;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** Ids of the text alone: no special tokens, no truncation, no padding. */
  tokenize(text: string): number[];
  /** Ids as the pipelines feed the text encoder. */
  encode(text: string, opts?: EncodeOptions): Encoding;
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export interface TokenizerOptions {
  /** Receives warnings (truncated prompts); the library never prints. */
  onWarning?: (message: string) => void;
}

/** JSON file of a tokenizer folder, or undefined when absent. */
export function readJsonIfExists(folder: string, name: string): Record<string, unknown> | undefined {
  const file = join(folder, name);
  if (!existsSync(file)) return undefined;
  return readJson(file);
}

export function readJson(file: string): Record<string, unknown> {
  return readJsonObject(file, 'tokenizer file', 'TOKENIZER_JSON');
}

/**
 * A special token's text as transformers resolves it: special_tokens_map.json wins over
 * tokenizer_config.json. Values are strings or AddedToken dicts (`{ content: ... }`).
 */
export function specialToken(
  key: string,
  specialMap: Record<string, unknown> | undefined,
  config: Record<string, unknown> | undefined,
): string | undefined {
  for (const src of [specialMap, config]) {
    const v = src?.[key];
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
      return (v as { content: string }).content;
    }
  }
  return undefined;
}

/** transformers writes int(1e30) when there is no limit; treat anything absurd as none. */
export function configMaxLength(config: Record<string, unknown> | undefined): number | undefined {
  const v = config?.model_max_length;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 1_000_000 ? v : undefined;
}

export function resolveMaxLength(opts: EncodeOptions, modelMaxLength: number, minimum: number): number {
  const maxLength = opts.maxLength ?? modelMaxLength;
  if (!Number.isFinite(maxLength)) {
    throw new ConfigError('TOKENIZER_MAX_LENGTH', 'the tokenizer has no model_max_length: pass maxLength', 'maxLength');
  }
  if (!Number.isInteger(maxLength) || maxLength < minimum) {
    throw new ConfigError(
      'TOKENIZER_MAX_LENGTH',
      `maxLength must be an integer >= ${minimum} (the special tokens alone take ${minimum}), got ${maxLength}`,
      'maxLength',
    );
  }
  return maxLength;
}

/** Pads (right side, as the pipelines do) and builds the attention mask. */
export function finishEncoding(
  ids: number[],
  maxLength: number,
  padding: boolean,
  padTokenId: number | undefined,
  truncatedTokens: number,
  truncatedText: string,
): Encoding {
  const attentionMask = new Array<number>(ids.length).fill(1);
  if (padding && ids.length < maxLength) {
    if (padTokenId === undefined) {
      throw new ConfigError('TOKENIZER_NO_PAD', 'padding was asked for but the tokenizer has no pad token', 'padding');
    }
    const n = maxLength - ids.length;
    ids = ids.concat(new Array<number>(n).fill(padTokenId));
    attentionMask.push(...new Array<number>(n).fill(0));
  }
  return { ids, attentionMask, truncatedTokens, truncatedText };
}

/** Characters of dropped prompt text a truncation warning shows. */
export const TRUNCATION_SHOWN = 120;

export function truncationWarning(name: string, maxLength: number, dropped: number, text: string): string {
  // the dropped text is shown cut: a long prompt would otherwise print as one huge line
  const shown = text.length > TRUNCATION_SHOWN ? `${text.slice(0, TRUNCATION_SHOWN)}…" (${text.length} characters)` : `${text}"`;
  return `${name}: the prompt was truncated to ${maxLength} tokens; ${dropped} token${dropped === 1 ? '' : 's'} dropped: "${shown}`;
}
