import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer, cleanClipText, loadTokenizer } from '../../src/tokenizers/index.js';
import { CLIP_DIR, FIXTURES, loopIds, scratchFolder } from './helpers.js';

const BOS = 49406;
const EOS = 49407;

interface Ref {
  prompt: string;
  ids: number[];
  input_ids_77: number[];
}
const refs = JSON.parse(readFileSync(join(FIXTURES, 'tokenizers', 'clip_reference.json'), 'utf8')) as Ref[];
const clip = ClipTokenizer.fromFolder(CLIP_DIR);

test('CLIP: every reference prompt gives exactly ids and input_ids_77', () => {
  assert.ok(refs.length >= 9);
  for (const r of refs) {
    assert.deepEqual(clip.tokenize(r.prompt), r.ids, `ids of ${JSON.stringify(r.prompt)}`);
    const enc = clip.encode(r.prompt);
    assert.deepEqual(enc.ids, r.input_ids_77, `input_ids_77 of ${JSON.stringify(r.prompt)}`);
    assert.deepEqual(enc.attentionMask, r.input_ids_77.map((_, i) => (i < r.ids.length + 2 ? 1 : 0)));
    assert.equal(enc.truncatedTokens, 0);
  }
});

test('CLIP: defaults read from the folder (77, bos/eos, pad = <|endoftext|>)', () => {
  assert.equal(clip.kind, 'clip');
  assert.equal(clip.modelMaxLength, 77);
  assert.equal(clip.bosTokenId, BOS);
  assert.equal(clip.eosTokenId, EOS);
  assert.equal(clip.padTokenId, EOS);
  assert.equal(clip.tokenizerClass, 'CLIPTokenizer');
});

test('CLIP: e2e_sd15_tiny_cat prompt and empty negative prompt ids', () => {
  const tok = loadTokenizer(join(FIXTURES, 'pipelines', 'sd15-tiny', 'tokenizer'));
  const { ids, metadata } = loopIds('e2e_sd15_tiny_cat.safetensors', 'input.prompt_input_ids');
  assert.equal(metadata.prompt, 'a photo of a cat');
  assert.deepEqual(tok.encode(metadata.prompt!).ids, ids);
  const neg = loopIds('e2e_sd15_tiny_cat.safetensors', 'input.negative_input_ids');
  assert.equal(metadata.negative_prompt, '');
  assert.deepEqual(tok.encode(metadata.negative_prompt!).ids, neg.ids);
});

test('CLIP: e2e_flux_tiny_fox clip_input_ids', () => {
  const tok = loadTokenizer(join(FIXTURES, 'pipelines', 'flux-tiny', 'tokenizer'));
  const { ids, metadata } = loopIds('e2e_flux_tiny_fox.safetensors', 'input.clip_input_ids');
  assert.equal(ids.length, 77);
  assert.deepEqual(tok.encode(metadata.prompt!).ids, ids);
});

test('CLIP: trained shapes pipelines tokenize their prompts (round trip)', () => {
  for (const [pipe, loop] of [
    ['shapes-sd', 'e2e_shapes_sd_yellow_square.safetensors'],
    ['shapes-flux', 'e2e_shapes_flux_red_circle.safetensors'],
  ] as const) {
    const tok = loadTokenizer(join(FIXTURES, 'trained', pipe, 'tokenizer'));
    assert.equal(tok.kind, 'clip');
    const prompt = loopIds(loop, 'input.latents' as string).metadata.prompt!;
    const enc = tok.encode(prompt);
    assert.equal(enc.ids.length, 77);
    assert.equal(enc.ids[0], BOS);
    // Every word of the shapes grammar is one CLIP token.
    assert.equal(enc.attentionMask.filter((m) => m === 1).length, prompt.split(' ').length + 2);
    assert.equal(tok.decode(enc.ids, { skipSpecialTokens: true }), prompt);
  }
});

test('CLIP: truncation keeps bos ... eos and reports the dropped tokens', () => {
  const warnings: string[] = [];
  const tok = ClipTokenizer.fromFolder(CLIP_DIR, { onWarning: (m) => warnings.push(m) });
  const words = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
  const content = tok.tokenize(words);
  assert.ok(content.length > 75);
  const enc = tok.encode(words);
  assert.equal(enc.ids.length, 77);
  assert.equal(enc.ids[0], BOS);
  assert.equal(enc.ids[76], EOS);
  assert.deepEqual(enc.ids.slice(1, 76), content.slice(0, 75));
  assert.deepEqual(enc.attentionMask, new Array(77).fill(1));
  assert.equal(enc.truncatedTokens, content.length - 75);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, new RegExp(`\\b${content.length - 75} tokens dropped`));
  assert.equal(enc.truncatedText, tok.decode(content.slice(75)));
  // Digits are single tokens, so the decoded tail reads 'word 9 9'.
  assert.match(enc.truncatedText, /word 9 9$/);

  // Exactly 75 content tokens fit without a warning.
  const fits = Array.from({ length: 75 }, () => 'cat').join(' ');
  assert.equal(tok.tokenize(fits).length, 75);
  const e2 = tok.encode(fits);
  assert.equal(e2.truncatedTokens, 0);
  assert.equal(e2.ids[76], EOS);
  assert.equal(warnings.length, 1);

  // A per-call callback takes over; truncation off keeps everything.
  const local: string[] = [];
  tok.encode(words, { onWarning: (m) => local.push(m) });
  assert.equal(local.length, 1);
  assert.equal(warnings.length, 1);
  const full = tok.encode(words, { truncation: false });
  assert.deepEqual(full.ids, [BOS, ...content, EOS]);
  assert.equal(full.truncatedTokens, 0);
});

test('CLIP: maxLength and padding options', () => {
  const enc = clip.encode('a photo of a cat', { maxLength: 10 });
  assert.deepEqual(enc.ids, [BOS, 320, 1125, 539, 320, 2368, EOS, EOS, EOS, EOS]);
  assert.deepEqual(enc.attentionMask, [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  const unpadded = clip.encode('a photo of a cat', { padding: false });
  assert.deepEqual(unpadded.ids, [BOS, 320, 1125, 539, 320, 2368, EOS]);
  const cut = clip.encode('a photo of a cat', { maxLength: 4, onWarning: () => {} });
  assert.deepEqual(cut.ids, [BOS, 320, 1125, EOS]);
  assert.equal(cut.truncatedTokens, 3);
  assert.throws(() => clip.encode('x', { maxLength: 1 }), { code: 'TOKENIZER_MAX_LENGTH' });
});

test('CLIP: pad token from special_tokens_map.json / tokenizer_config.json (SDXL tokenizer_2 uses "!")', () => {
  // special_tokens_map.json wins over tokenizer_config.json, as in transformers.
  const a = scratchFolder(CLIP_DIR, ['vocab.json', 'merges.txt'], {
    'special_tokens_map.json': { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', pad_token: '!', unk_token: '<|endoftext|>' },
    'tokenizer_config.json': { tokenizer_class: 'CLIPTokenizer', model_max_length: 77, pad_token: '<|endoftext|>' },
  });
  // AddedToken dict form in tokenizer_config.json only.
  const b = scratchFolder(CLIP_DIR, ['vocab.json', 'merges.txt'], {
    'tokenizer_config.json': { model_max_length: 77, pad_token: { content: '!', lstrip: false, normalized: true, rstrip: false, single_word: false } },
  });
  // No config at all: <|endoftext|>, 77.
  const c = scratchFolder(CLIP_DIR, ['vocab.json', 'merges.txt']);
  try {
    for (const dir of [a, b]) {
      const tok = loadTokenizer(dir);
      assert.equal(tok.padTokenId, 0);
      const enc = tok.encode('a photo of a cat');
      assert.deepEqual(enc.ids.slice(0, 9), [BOS, 320, 1125, 539, 320, 2368, EOS, 0, 0]);
      assert.equal(enc.ids.length, 77);
      assert.equal(enc.ids[76], 0);
    }
    const tok = loadTokenizer(c);
    assert.equal(tok.padTokenId, EOS);
    assert.equal(tok.modelMaxLength, 77);
    assert.deepEqual(tok.encode('a photo of a cat').ids, refs[0]!.input_ids_77);
  } finally {
    for (const d of [a, b, c]) rmSync(d, { recursive: true, force: true });
  }
});

test('CLIP: text cleanup, special tokens in text, unicode', () => {
  assert.equal(cleanClipText('  A\u00a0B\t\nC\u3000 '), 'a b c');
  // U+001C..U+001F are not whitespace to the regex, but Python's strip() removes them at the ends.
  assert.equal(cleanClipText('\u001cA\u001cB\u001c'), 'a\u001cb');
  assert.deepEqual(clip.tokenize('A PHOTO OF A CAT'), refs[0]!.ids);
  assert.deepEqual(clip.tokenize('a photo<|endoftext|>'), [320, 1125, EOS]);
  // NFC: a decomposed é tokenizes as the composed one.
  assert.deepEqual(clip.tokenize('cafe\u0301'), clip.tokenize('caf\u00e9'));
  const s = 'ünïcödé 🦊 test!!';
  assert.equal(clip.decode(clip.encode(s).ids, { skipSpecialTokens: true }), 'ünïcödé 🦊 test !!');
});

// a liveness bound, not a speed claim: quadratic merging of one 130k-character word would run for minutes
test('CLIP: a 130k-character word tokenizes without recursion, huge spreads or quadratic time (issue 9, case 6)', { timeout: 30_000 }, () => {
  const tok = ClipTokenizer.fromFolder(CLIP_DIR);
  let x = 1;
  const letters = Array.from({ length: 130_000 }, () => String.fromCharCode(97 + ((x = (x * 48271) % 2147483647) % 26))).join('');
  const enc = tok.encode(letters, { onWarning: () => undefined });
  assert.equal(enc.ids.length, 77);
  assert.ok(enc.truncatedTokens > 0);
  // the kept tokens do not depend on where a long word is cut
  assert.deepEqual(tok.tokenize(letters).slice(0, 75), tok.tokenize(letters.slice(0, 700)).slice(0, 75));
  // a long prompt of many words stops counting early, and the warning stays short
  const warnings: string[] = [];
  tok.encode('cat '.repeat(100_000), { onWarning: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
  assert.ok(warnings[0]!.length < 400, `${warnings[0]!.length} characters`);
  assert.match(warnings[0]!, /…" \(\d+ characters\)$/);
});

test('CLIP: fromFolder reads a vocabulary once while its files stay the same, and again when they change', () => {
  const dir = scratchFolder(CLIP_DIR, ['vocab.json', 'merges.txt']);
  try {
    const prompt = 'a photograph of an astronaut riding a horse';
    const first = ClipTokenizer.fromFolder(dir);
    const want = clip.tokenize(prompt);
    assert.deepEqual(first.tokenize(prompt), want);
    const again = ClipTokenizer.fromFolder(dir);
    assert.deepEqual(again.tokenize(prompt), want);
    // the same tables, not a second read (private, looked at here only)
    assert.equal(again['ranks'], first['ranks']);
    // merges.txt with its header only: no merge applies, so every word falls apart into symbols
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n');
    const changed = ClipTokenizer.fromFolder(dir);
    assert.notEqual(changed['ranks'], first['ranks']);
    assert.notDeepEqual(changed.tokenize(prompt), want);
    assert.ok(changed.tokenize(prompt).length > want.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
