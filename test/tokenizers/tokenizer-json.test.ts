import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JsonTokenizer, loadTokenizer, toInt64 } from '../../src/tokenizers/index.js';
import { FIXTURES, loopIds } from './helpers.js';

const FLUX_T5 = join(FIXTURES, 'pipelines', 'flux-tiny', 'tokenizer_2');
const SHAPES_T5 = join(FIXTURES, 'trained', 'shapes-flux', 'tokenizer_2');

test('T5: e2e_flux_tiny_fox t5_input_ids (eos appended, padded with 0 to max_sequence_length)', () => {
  const tok = loadTokenizer(FLUX_T5);
  assert.ok(tok instanceof JsonTokenizer);
  assert.equal(tok.kind, 'tokenizer-json');
  assert.equal(tok.tokenizerClass, 'T5Tokenizer');
  assert.equal(tok.padTokenId, 0);
  assert.equal(tok.eosTokenId, 1);
  assert.equal(tok.modelMaxLength, 512);
  const { ids, metadata } = loopIds('e2e_flux_tiny_fox.safetensors', 'input.t5_input_ids');
  const maxLength = Number(metadata.max_sequence_length);
  assert.equal(maxLength, 32);
  const enc = tok.encode(metadata.prompt!, { maxLength });
  assert.deepEqual(enc.ids, ids);
  const n = ids.indexOf(1) + 1;
  assert.deepEqual(enc.attentionMask, ids.map((_, i) => (i < n ? 1 : 0)));
  assert.equal(enc.truncatedTokens, 0);
  assert.deepEqual(Array.from(toInt64(enc.ids), Number), ids);
});

test('T5: shapes-flux prompt (every grammar word is one Unigram piece)', () => {
  const tok = loadTokenizer(SHAPES_T5);
  const { metadata } = loopIds('e2e_shapes_flux_red_circle.safetensors', 'input.latents');
  assert.equal(metadata.prompt, 'a large red circle at the center on a black background');
  const enc = tok.encode(metadata.prompt!, { maxLength: Number(metadata.max_sequence_length) });
  // ▁a ▁large ▁red ▁circle ▁at ▁the ▁center ▁on ▁a ▁black ▁background </s>, by vocab index.
  const expected = [4, 14, 20, 11, 5, 24, 10, 17, 4, 7, 6, 1];
  assert.deepEqual(enc.ids, [...expected, ...new Array(32 - expected.length).fill(0)]);
  assert.equal(tok.decode(enc.ids, { skipSpecialTokens: true }), metadata.prompt);
});

test('T5: truncation keeps </s> last and warns with the dropped count', () => {
  const warnings: string[] = [];
  const tok = JsonTokenizer.fromFolder(FLUX_T5, { onWarning: (m) => warnings.push(m) });
  const prompt = Array.from({ length: 40 }, (_, i) => ['a', 'red', 'fox', 'in', 'the', 'snowy', 'forest'][i % 7]).join(' ');
  const content = tok.tokenize(prompt);
  assert.equal(content.length, 40);
  const enc = tok.encode(prompt, { maxLength: 32 });
  assert.equal(enc.ids.length, 32);
  assert.deepEqual(enc.ids, [...content.slice(0, 31), 1]);
  assert.deepEqual(enc.attentionMask, new Array(32).fill(1));
  assert.equal(enc.truncatedTokens, 9);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /\b9 tokens dropped/);
  assert.equal(enc.truncatedText, tok.decode(content.slice(31)));
  // 31 text tokens + </s> fit exactly.
  const fits = prompt.split(' ').slice(0, 31).join(' ');
  const e2 = tok.encode(fits, { maxLength: 32 });
  assert.equal(e2.truncatedTokens, 0);
  assert.equal(e2.ids[31], 1);
  assert.equal(warnings.length, 1);
  assert.deepEqual(tok.encode(prompt, { maxLength: 32, truncation: false }).ids, [...content, 1]);
});

test('T5: empty prompt and unpadded encoding', () => {
  const tok = loadTokenizer(FLUX_T5);
  assert.deepEqual(tok.encode('', { maxLength: 4 }).ids, [1, 0, 0, 0]);
  assert.deepEqual(tok.encode('a photo', { maxLength: 32, padding: false }).ids, [4, 20, 1]);
  assert.throws(() => tok.encode('x', { maxLength: 0 }), { code: 'TOKENIZER_MAX_LENGTH' });
});
