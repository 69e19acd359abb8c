// Issue 9, case 16: what we write loads in the tools users run. Config values carry the types
// of the released configs; RMSNorm squares with Pow(x, 2) as PyTorch's exporter emits it.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allNodes } from '../../src/ir/graph.js';
import { buildComponent } from '../../src/models/convert.js';
import { createRandomPipeline } from '../../src/random/create-random.js';
import { configText } from '../../src/random/config-json.js';
import { fixture } from '../helpers.js';

const root = mkdtempSync(join(tmpdir(), 'smash-config-types-'));
after(() => rmSync(root, { recursive: true, force: true }));

// float-typed keys of the released configs (openai/clip-vit-large-patch14, google/t5-v1_1-xxl,
// black-forest-labs/FLUX.1-*/scheduler, stabilityai/stable-diffusion-3-medium-diffusers)
const RELEASED_FLOATS: Record<string, string[]> = {
  'text_encoder/config.json': ['attention_dropout', 'dropout', 'initializer_factor', 'initializer_range', 'layer_norm_eps'],
  'text_encoder_2/config.json': ['dropout_rate', 'initializer_factor', 'layer_norm_epsilon'],
  'scheduler/scheduler_config.json': ['shift', 'base_shift', 'max_shift'],
  'vae/config.json': ['scaling_factor', 'shift_factor'],
};

/** The raw JSON number text of a top-level key. */
function rawNumber(text: string, key: string): string | undefined {
  return new RegExp(`"${key}": (-?[0-9.eE+-]+)`).exec(text)?.[1];
}

test('create-random writes float-typed config keys as floats (1.0, not 1)', () => {
  const dir = join(root, 'flux');
  createRandomPipeline(dir, 'flux-schnell', { widthMult: 0.05, depth: 1 });
  for (const [file, keys] of Object.entries(RELEASED_FLOATS)) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const k of keys) {
      const raw = rawNumber(text, k);
      if (raw === undefined) continue; // not every release has every key
      assert.match(raw, /[.eE]/, `${file}: "${k}": ${raw} must be written as a float`);
    }
    JSON.parse(text);
  }
  // a key we must have checked at least once per file
  assert.equal(rawNumber(readFileSync(join(dir, 'text_encoder/config.json'), 'utf8'), 'initializer_factor'), '1.0');
  assert.equal(rawNumber(readFileSync(join(dir, 'text_encoder_2/config.json'), 'utf8'), 'initializer_factor'), '1.0');
  assert.equal(rawNumber(readFileSync(join(dir, 'scheduler/scheduler_config.json'), 'utf8'), 'shift'), '1.0');
  // ints stay ints
  assert.match(rawNumber(readFileSync(join(dir, 'text_encoder/config.json'), 'utf8'), 'hidden_size')!, /^\d+$/);
  assert.equal(configText({ architectures: ['T5EncoderModel'], initializer_factor: 1, d_model: 8 }), '{\n  "architectures": [\n    "T5EncoderModel"\n  ],\n  "initializer_factor": 1.0,\n  "d_model": 8\n}\n');
});

test('RMSNorm squares with Pow(x, 2), never Mul(x, x)', () => {
  const m = buildComponent(fixture('models', 'flux-transformer-tiny')).model!;
  const nodes = [...allNodes(m.graph)];
  const pows = nodes.filter((n) => n.opType === 'Pow' && /norm_q|norm_k/.test(n.name));
  assert.ok(pows.length > 0);
  const squares = nodes.filter((n) => n.opType === 'Mul' && n.inputs.length === 2 && n.inputs[0] === n.inputs[1] && /norm/.test(n.name));
  assert.deepEqual(squares.map((n) => n.name), []);
});
