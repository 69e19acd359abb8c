import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allShapeCaptions, BUILTIN_PROMPTS, namedPromptSet, readPromptFile, shapePrompts } from '../../src/eval/prompts.js';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

const GRAMMAR = /^a (small|large) (red|green|blue|yellow|white|purple|orange|black) (circle|square|triangle) at the (left|right|top|bottom|center) on a (black|white|gray|blue|green) background$/;

test('the built-in set has at least 32 distinct prompts', () => {
  assert.ok(BUILTIN_PROMPTS.length >= 32);
  assert.equal(new Set(BUILTIN_PROMPTS).size, BUILTIN_PROMPTS.length);
});

test('shape captions follow the fixtures grammar and its exclusions, and a sample covers every axis', () => {
  const all = allShapeCaptions();
  // 5 backgrounds × 8 colours − 4 same-colour (gray is no shape colour) − 2 on gray = 34 colourings × 2 sizes × 3 shapes × 5 places
  assert.equal(all.length, 34 * 30);
  for (const p of all) {
    const m = GRAMMAR.exec(p);
    assert.ok(m, p);
    assert.notEqual(m[2], m[5], p);
    assert.ok(!(m[5] === 'gray' && (m[2] === 'white' || m[2] === 'black')), p);
  }
  const sample = shapePrompts(16);
  assert.equal(new Set(sample).size, 16);
  for (const [axis, values] of [[1, 2], [2, 5], [3, 3], [4, 5], [5, 4]] as const) assert.ok(new Set(sample.map((p) => GRAMMAR.exec(p)![axis])).size >= values, `axis ${axis} varies`);
  assert.deepEqual(namedPromptSet('shapes:4'), shapePrompts(4));
  assert.throws(() => namedPromptSet('nope'), ConfigError);
});

test('prompt files: text lines, JSON strings or objects, CSV prompt column with quotes', () => {
  const dir = tempDir('prompts-');
  const f = (name: string, body: string) => { writeFileSync(join(dir, name), body); return join(dir, name); };
  assert.deepEqual(readPromptFile(f('a.txt', '# comment\na cat\n\n  a dog  \r\n')), ['a cat', 'a dog']);
  assert.deepEqual(readPromptFile(f('a.json', '["a cat", {"prompt": "a dog", "seed": 3}]')), ['a cat', 'a dog']);
  assert.deepEqual(readPromptFile(f('a.csv', 'id,prompt\n1,"a cat, sleeping"\n2,"say ""hi"""\n')), ['a cat, sleeping', 'say "hi"']);
  assert.deepEqual(readPromptFile(f('b.csv', 'a fox\na bear\n')), ['a fox', 'a bear']);
  assert.throws(() => readPromptFile(f('bad.json', '{"prompt": "x"}')), ModelFormatError);
  assert.throws(() => readPromptFile(f('bad2.json', '[1]')), /entry 0/);
  assert.throws(() => readPromptFile(f('empty.txt', '\n# only\n')), ModelFormatError);
  assert.throws(() => readPromptFile(join(dir, 'missing.txt')), ConfigError);
});
