import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../errors.js';
import {
  configMaxLength,
  finishEncoding,
  readJson,
  readJsonIfExists,
  resolveMaxLength,
  specialToken,
  truncationWarning,
  type EncodeOptions,
  type Encoding,
  type Tokenizer,
  type TokenizerOptions,
} from './common.js';

export interface JsonTokenizerData {
  /** Parsed tokenizer.json. */
  tokenizer: Record<string, unknown>;
  /** Parsed tokenizer_config.json, if any. */
  config?: Record<string, unknown>;
  /** Parsed special_tokens_map.json, if any. */
  specialTokensMap?: Record<string, unknown>;
  /** Named in errors. */
  source?: string;
}

/**
 * A tokenizer.json tokenizer (T5's Unigram, and whatever else @huggingface/tokenizers reads),
 * encoded the way the pipelines call the fast tokenizers: special tokens from the post-processor
 * (T5 appends `</s>`), truncation that keeps them, right padding with the pad token.
 */
export class JsonTokenizer implements Tokenizer {
  readonly kind = 'tokenizer-json' as const;
  readonly tokenizerClass: string | undefined;
  readonly modelMaxLength: number;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** How many special tokens the post-processor adds to a single sequence. */
  readonly numSpecialTokens: number;
  private readonly hf: HfTokenizer;
  private readonly name: string;
  private readonly onWarning?: (message: string) => void;

  constructor(data: JsonTokenizerData, opts: TokenizerOptions = {}) {
    const config = data.config ?? {};
    try {
      this.hf = new HfTokenizer(data.tokenizer, config);
    } catch (e) {
      throw new ModelFormatError('TOKENIZER_UNSUPPORTED', `cannot build the tokenizer: ${(e as Error).message}`, {
        file: data.source,
        cause: e,
      });
    }
    const idOf = (key: string): number | undefined => {
      const t = specialToken(key, data.specialTokensMap, config);
      return t === undefined ? undefined : this.hf.token_to_id(t);
    };
    const padding = data.tokenizer.padding as { pad_id?: unknown } | null | undefined;
    this.padTokenId = idOf('pad_token') ?? (typeof padding?.pad_id === 'number' ? padding.pad_id : undefined);
    this.bosTokenId = idOf('bos_token');
    this.eosTokenId = idOf('eos_token');
    const truncation = data.tokenizer.truncation as { max_length?: unknown } | null | undefined;
    this.modelMaxLength =
      configMaxLength(config) ?? (typeof truncation?.max_length === 'number' ? truncation.max_length : Infinity);
    this.numSpecialTokens = this.hf.post_processor ? this.hf.post_processor.post_process([], null, true).tokens.length : 0;
    const cls = config.tokenizer_class;
    this.tokenizerClass = typeof cls === 'string' ? cls : undefined;
    this.name = this.tokenizerClass ?? 'tokenizer';
    this.onWarning = opts.onWarning;
  }

  /** Reads tokenizer.json and (when present) tokenizer_config.json / special_tokens_map.json. */
  static fromFolder(folder: string, opts: TokenizerOptions = {}): JsonTokenizer {
    const file = join(folder, 'tokenizer.json');
    if (!existsSync(file)) throw new ModelFormatError('FILE_MISSING', 'tokenizer.json not found', { file });
    return new JsonTokenizer(
      {
        tokenizer: readJson(file),
        config: readJsonIfExists(folder, 'tokenizer_config.json'),
        specialTokensMap: readJsonIfExists(folder, 'special_tokens_map.json'),
        source: file,
      },
      opts,
    );
  }

  tokenize(text: string): number[] {
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    const maxLength = resolveMaxLength(opts, this.modelMaxLength, Math.max(1, this.numSpecialTokens));
    let ids = this.hf.encode(text, { add_special_tokens: true }).ids;
    let dropped: number[] = [];
    if ((opts.truncation ?? true) && ids.length > maxLength) {
      // Cut the text's tokens, then let the post-processor add the special tokens, as the Rust
      // tokenizers do; so T5 keeps `</s>` last.
      const keep = maxLength - this.numSpecialTokens;
      const content = this.hf.encode(text, { add_special_tokens: false });
      dropped = content.ids.slice(keep);
      const kept = content.tokens.slice(0, keep);
      const processed: string[] = this.hf.post_processor ? this.hf.post_processor.post_process(kept, null, true).tokens : kept;
      const unk = this.hf.model?.unk_token_id;
      ids = processed.map((t) => {
        const id = this.hf.token_to_id(t) ?? unk;
        if (id === undefined) throw new ModelFormatError('TOKENIZER_VOCAB', `token '${t}' has no id`);
        return id;
      });
    }
    const truncatedText = dropped.length ? this.decode(dropped) : '';
    if (dropped.length) {
      const warn = opts.onWarning ?? this.onWarning;
      warn?.(truncationWarning(this.name, maxLength, dropped.length, truncatedText));
    }
    return finishEncoding(ids, maxLength, opts.padding ?? true, this.padTokenId, dropped.length, truncatedText);
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }
}
