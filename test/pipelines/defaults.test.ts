// Issue 9, case 11: a pipeline folder carries its generation defaults (smash.json).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import { readGenerationDefaults, withDefaults } from '../../src/pipelines/defaults.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from './fixtures.js';

const tmp = tempCache('defaults');

test('readGenerationDefaults / withDefaults', () => {
  const dir = join(tmp.dir, 'unit');
  cpSync(fixture('pipelines', 'sd15-tiny', 'scheduler'), dir, { recursive: true });
  assert.deepEqual(readGenerationDefaults(dir), {});
  writeFileSync(join(dir, 'smash.json'), JSON.stringify({ generation: { maxSequenceLength: 32, steps: 28 } }));
  assert.deepEqual(readGenerationDefaults(dir), { maxSequenceLength: 32, steps: 28 });
  assert.deepEqual(withDefaults({ steps: 4 }, { maxSequenceLength: 32, steps: 28 }), { steps: 4, maxSequenceLength: 32 });
  for (const bad of [{ generation: { max_sequence_length: 32 } }, { generation: { steps: '28' } }, { generation: [] }]) {
    writeFileSync(join(dir, 'smash.json'), JSON.stringify(bad));
    assert.throws(() => readGenerationDefaults(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'CONFIG_VALUE' && e.message.includes('smash.json'));
  }
});

test('shapes-flux with smash.json: generate uses its 32 tokens and steps; options still win; convert carries the file', async () => {
  const model = join(tmp.dir, 'shapes-flux');
  cpSync(fixture('trained', 'shapes-flux'), model, { recursive: true });
  writeFileSync(join(model, 'smash.json'), JSON.stringify({ generation: { maxSequenceLength: 32, steps: 3 } }));
  const run = async (name: string, ...more: string[]) => {
    const report = join(tmp.dir, `${name}.json`);
    const r = await runCli(['generate', '--model', model, '--prompt', 'a small green triangle at the top on a black background', '--width', '32', '--height', '32',
      '--seed', '1', '--threads', '1', '--out', join(tmp.dir, `${name}.png`), '--report', report, ...more]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(readFileSync(report, 'utf8')).settings;
  };
  const d = await run('defaults');
  assert.equal(d.maxSequenceLength, 32);
  assert.equal(d.steps, 3);
  const o = await run('override', '--steps', '2', '--max-sequence-length', '16');
  assert.equal(o.maxSequenceLength, 16);
  assert.equal(o.steps, 2);

  const out = join(tmp.dir, 'onnx');
  assert.equal((await runCli(['convert', model, '--out', out])).code, 0);
  assert.ok(existsSync(join(out, 'smash.json')));
});
