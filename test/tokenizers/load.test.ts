import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import { loadTokenizer } from '../../src/tokenizers/index.js';
import { CLIP_DIR, FIXTURES, scratchFolder } from './helpers.js';
import { tempDir } from '../helpers.js';

test('loadTokenizer picks CLIP or tokenizer.json for every fixture pipeline folder', () => {
  const cases: [string, 'clip' | 'tokenizer-json'][] = [
    ['pipelines/sd15-tiny/tokenizer', 'clip'],
    ['pipelines/flux-tiny/tokenizer', 'clip'],
    ['pipelines/flux-tiny/tokenizer_2', 'tokenizer-json'],
    ['trained/shapes-sd/tokenizer', 'clip'],
    ['trained/shapes-flux/tokenizer', 'clip'],
    ['trained/shapes-flux/tokenizer_2', 'tokenizer-json'],
    ['tokenizers/clip', 'clip'],
  ];
  for (const [dir, kind] of cases) assert.equal(loadTokenizer(join(FIXTURES, dir)).kind, kind, dir);
});

function expectMissing(fn: () => unknown, file: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError);
    assert.equal(e.code, 'FILE_MISSING');
    assert.equal(e.file, file);
    assert.ok(e.message.includes(file), e.message);
    return true;
  });
}

test('missing tokenizer files name the file', () => {
  const empty = tempDir('smash-tok-');
  const noMerges = scratchFolder(CLIP_DIR, ['vocab.json']);
  const noVocab = scratchFolder(CLIP_DIR, ['merges.txt']);
  const configOnly = scratchFolder(CLIP_DIR, ['tokenizer_config.json']);
  try {
    expectMissing(() => loadTokenizer(empty), join(empty, 'tokenizer.json'));
    // tokenizer_config.json says CLIPTokenizer: the CLIP files are what is missing.
    expectMissing(() => loadTokenizer(configOnly), join(configOnly, 'vocab.json'));
    expectMissing(() => loadTokenizer(noMerges), join(noMerges, 'merges.txt'));
    expectMissing(() => loadTokenizer(noVocab), join(noVocab, 'vocab.json'));
    const nowhere = join(empty, 'does-not-exist');
    expectMissing(() => loadTokenizer(nowhere), nowhere);
  } finally {
    for (const d of [empty, noMerges, noVocab, configOnly]) rmSync(d, { recursive: true, force: true });
  }
});

test('malformed tokenizer files are ModelFormatErrors naming the file', () => {
  const badJson = scratchFolder(CLIP_DIR, ['merges.txt'], { 'vocab.json': '{"a": 1,' });
  const badTok = scratchFolder(CLIP_DIR, [], { 'tokenizer.json': { version: '1.0', model: { type: 'Nope' } } });
  const noEos = scratchFolder(CLIP_DIR, ['merges.txt'], { 'vocab.json': { a: 0 } });
  try {
    assert.throws(() => loadTokenizer(badJson), { code: 'TOKENIZER_JSON', file: join(badJson, 'vocab.json') });
    assert.throws(() => loadTokenizer(badTok), { code: 'TOKENIZER_UNSUPPORTED', file: join(badTok, 'tokenizer.json') });
    assert.throws(() => loadTokenizer(noEos), { code: 'TOKENIZER_VOCAB', file: join(noEos, 'vocab.json') });
  } finally {
    for (const d of [badJson, badTok, noEos]) rmSync(d, { recursive: true, force: true });
  }
});
