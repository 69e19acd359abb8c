import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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

const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** The original CLIP (and transformers' slow CLIPTokenizer) read only this many merges. */
const MAX_MERGES = 49152 - 256 - 2;
const CACHE_LIMIT = 20_000;
/**
 * BPE costs O(n²) in a word's length, so a pre-token is cut to this many symbols: far more than
 * the 75 tokens CLIP keeps (tokens average 3-5 symbols), so ids within the model's length are
 * unchanged, and a 100k-character word costs milliseconds.
 */
const MAX_WORD = 2048;
/** Tokens counted beyond the model's length (for the truncation warning) before tokenizing stops. */
const COUNT_BEYOND = 4096;

/**
 * Unicode White_Space, what `\s` means in the `regex` module and Rust's regex (which CLIP's
 * reference implementations use). JS `\s` also matches U+FEFF, which CLIP keeps as a symbol.
 */
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WS}]+`, 'gu');
/** Python's str.strip() set (str.isspace), which also holds U+001C..U+001F. */
const PY_STRIP = new RegExp(`^[${WS}\\x1c-\\x1f]+|[${WS}\\x1c-\\x1f]+$`, 'gu');
/** CLIP's pre-tokenizer, compiled with IGNORECASE as in the original. */
const PAT = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WS}\\p{L}\\p{N}]+`,
  'giu',
);

/** GPT-2's reversible byte -> printable character table. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  return table;
}
const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));
const UTF8 = new TextEncoder();

/** Text cleanup without ftfy or HTML unescaping: NFC, whitespace runs to one space, strip, lowercase. */
export function cleanClipText(text: string): string {
  return text.normalize('NFC').replace(WS_RUN, ' ').replace(PY_STRIP, '').toLowerCase();
}

export interface ClipTokenizerData {
  vocab: Record<string, number>;
  /** merges.txt lines after the `#version` header, "a b" each. */
  merges: readonly string[];
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  modelMaxLength?: number;
  tokenizerClass?: string;
  /** Named in errors. */
  source?: string;
}

/** A vocabulary's lookup tables: read-only once built, so tokenizers of the same files share them. */
interface ClipTables {
  encoder: ReadonlyMap<string, number>;
  decoder: ReadonlyMap<number, string>;
  ranks: ReadonlyMap<string, number>;
}

function buildTables(data: Pick<ClipTokenizerData, 'vocab' | 'merges'>): ClipTables {
  const encoder = new Map(Object.entries(data.vocab));
  const decoder = new Map([...encoder].map(([t, id]) => [id, t]));
  const ranks = new Map<string, number>();
  const n = Math.min(data.merges.length, MAX_MERGES);
  for (let i = 0; i < n; i++) {
    const line = data.merges[i]!;
    if (line.split(' ').length !== 2) continue;
    // A later duplicate wins, as with Python's dict(zip(merges, range(n))).
    ranks.set(line, i);
  }
  return { encoder, decoder, ranks };
}

/**
 * The tables of the last few vocab.json + merges.txt pairs used, by path, size and mtime: a
 * process loads the same tokenizer with every pipeline, and reading it takes 0.2–0.4 s of CPU.
 */
const TABLES = new Map<string, ClipTables>();
const TABLES_KEPT = 4;

function readVocab(vocabFile: string): Record<string, number> {
  const vocab = readJson(vocabFile);
  for (const [k, v] of Object.entries(vocab)) {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new ModelFormatError('TOKENIZER_VOCAB', `vocabulary entry '${k}' is not an integer id`, { file: vocabFile });
    }
  }
  return vocab as Record<string, number>;
}

/** merges.txt's lines after the "#version" header (the reference skips the first line too). */
function readMerges(mergesFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(mergesFile, 'utf8');
  } catch (e) {
    throw new ModelFormatError('FILE_MISSING', `cannot read merges: ${(e as Error).message}`, { file: mergesFile, cause: e });
  }
  return text.split('\n').slice(1).map((l) => l.replace(/\r$/, ''));
}

/** CLIP's BPE tokenizer, as Stable Diffusion / SDXL / SD3 / Flux pipelines use it. */
export class ClipTokenizer implements Tokenizer {
  readonly kind = 'clip' as const;
  readonly tokenizerClass: string | undefined;
  readonly modelMaxLength: number;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly unkTokenId: number;
  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder: ReadonlyMap<number, string>;
  private readonly ranks: ReadonlyMap<string, number>;
  private readonly cache = new Map<string, string[]>();
  private readonly onWarning?: (message: string) => void;

  /** `tables`: the lookup tables of `data.vocab` and `data.merges` when already built (fromFolder's cache). */
  constructor(data: ClipTokenizerData, opts: TokenizerOptions = {}, tables: ClipTables = buildTables(data)) {
    ({ encoder: this.encoder, decoder: this.decoder, ranks: this.ranks } = tables);
    const id = (token: string, what: string): number => {
      const v = this.encoder.get(token);
      if (v === undefined) {
        throw new ModelFormatError('TOKENIZER_VOCAB', `${what} '${token}' is not in the vocabulary`, { file: data.source });
      }
      return v;
    };
    this.bosTokenId = id(data.bosToken ?? BOS, 'bos token');
    this.eosTokenId = id(data.eosToken ?? EOS, 'eos token');
    this.padTokenId = id(data.padToken ?? EOS, 'pad token');
    this.unkTokenId = id(data.unkToken ?? EOS, 'unk token');
    this.modelMaxLength = data.modelMaxLength ?? 77;
    this.tokenizerClass = data.tokenizerClass;
    this.onWarning = opts.onWarning;
  }

  /** Reads vocab.json, merges.txt and (when present) special_tokens_map.json / tokenizer_config.json. */
  static fromFolder(folder: string, opts: TokenizerOptions = {}): ClipTokenizer {
    const vocabFile = join(folder, 'vocab.json');
    const mergesFile = join(folder, 'merges.txt');
    for (const f of [vocabFile, mergesFile]) {
      if (!existsSync(f)) throw new ModelFormatError('FILE_MISSING', 'CLIP tokenizer file not found', { file: f });
    }
    const key = [vocabFile, mergesFile].map((f) => { const st = statSync(f); return `${f}:${st.size}:${st.mtimeMs}`; }).join('|');
    // a Map iterates in insertion order: re-inserting on a hit makes the first key the least recently used
    const tables = TABLES.get(key) ?? buildTables({ vocab: readVocab(vocabFile), merges: readMerges(mergesFile) });
    TABLES.delete(key);
    TABLES.set(key, tables);
    if (TABLES.size > TABLES_KEPT) TABLES.delete(TABLES.keys().next().value!);
    const config = readJsonIfExists(folder, 'tokenizer_config.json');
    const specialMap = readJsonIfExists(folder, 'special_tokens_map.json');
    const cls = config?.tokenizer_class;
    return new ClipTokenizer(
      {
        // the tables stand for them
        vocab: {},
        merges: [],
        bosToken: specialToken('bos_token', specialMap, config),
        eosToken: specialToken('eos_token', specialMap, config),
        padToken: specialToken('pad_token', specialMap, config),
        unkToken: specialToken('unk_token', specialMap, config),
        modelMaxLength: configMaxLength(config),
        tokenizerClass: typeof cls === 'string' ? cls : undefined,
        source: vocabFile,
      },
      opts,
      tables,
    );
  }

  /** Token ids of `text` without bos/eos; stops once `limit` ids are found. */
  tokenize(text: string, limit = Infinity): number[] {
    const ids: number[] = [];
    for (const m of cleanClipText(text).matchAll(PAT)) {
      if (ids.length >= limit) break;
      const word = m[0];
      // The two special tokens are kept whole, as the reference's BPE cache does.
      if (word === BOS || word === EOS) {
        ids.push(this.encoder.get(word) ?? this.unkTokenId);
        continue;
      }
      let encoded = '';
      for (const b of UTF8.encode(word.length > MAX_WORD ? word.slice(0, MAX_WORD) : word)) {
        if (encoded.length >= MAX_WORD) break;
        encoded += BYTE_ENCODER[b];
      }
      for (const piece of this.bpe(encoded)) ids.push(this.encoder.get(piece) ?? this.unkTokenId);
    }
    return ids;
  }

  encode(text: string, opts: EncodeOptions = {}): Encoding {
    const maxLength = resolveMaxLength(opts, this.modelMaxLength, 2);
    const truncate = opts.truncation ?? true;
    let content = this.tokenize(text, truncate ? maxLength + COUNT_BEYOND : Infinity);
    let dropped: number[] = [];
    if (truncate && content.length + 2 > maxLength) {
      dropped = content.slice(maxLength - 2);
      content = content.slice(0, maxLength - 2);
    }
    const truncatedText = dropped.length ? this.decode(dropped) : '';
    if (dropped.length) {
      const warn = opts.onWarning ?? this.onWarning;
      warn?.(truncationWarning('CLIP tokenizer', maxLength, dropped.length, truncatedText));
    }
    const ids = [this.bosTokenId].concat(content, [this.eosTokenId]);
    return finishEncoding(ids, maxLength, opts.padding ?? true, this.padTokenId, dropped.length, truncatedText);
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const special = new Set([this.bosTokenId, this.eosTokenId, this.padTokenId]);
    const bytes: number[] = [];
    for (const id of ids) {
      if (opts.skipSpecialTokens && special.has(id)) continue;
      const token = this.decoder.get(id);
      if (token === undefined) continue;
      for (const ch of token) {
        const b = BYTE_DECODER.get(ch);
        if (b !== undefined) bytes.push(b);
      }
    }
    // As transformers: bytes to UTF-8 (invalid sequences replaced), then `</w>` marks a space.
    return Buffer.from(bytes).toString('utf8').replaceAll('</w>', ' ').trim();
  }

  /** Byte-level BPE of one pre-token, `</w>` on its last symbol; merges lowest rank first. */
  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    let word = Array.from(token);
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          first = word[i]!;
          second = word[i + 1]!;
        }
      }
      if (best === Infinity) break;
      // Merge every non-overlapping occurrence, left to right.
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }
}
