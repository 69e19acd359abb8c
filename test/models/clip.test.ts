// CLIPTextModel / CLIPTextModelWithProjection against the transformers references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor, tensorData, type Tensor } from '../../src/core/tensor.js';
import { buildCLIPTextModel } from '../../src/models/clip-text.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, expectFormatError, fixture, readF32, relL2 } from '../helpers.js';

const TOL = 1e-4;

function build(dir: string): { model: Model; weights: Weights; config: ModelConfig } {
  const config = ModelConfig.load(dir);
  const weights = new Weights(Checkpoint.open(dir));
  return { model: buildCLIPTextModel(config, weights).model!, weights, config };
}

function ids64(dims: number[], ids: number[]): HostTensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(ids.map(BigInt)) };
}

function refIds(file: string, key: string): number[] {
  return Array.from(tensorData(SafetensorsFile.open(file).tensor(key)) as BigInt64Array, Number);
}

async function run(model: Model, ids: HostTensor): Promise<Record<string, HostTensor>> {
  const s = await Session.create(model);
  try {
    return (await s.run({ input_ids: ids })).outputs;
  } finally {
    await s.release();
  }
}

/** A copy of a model folder with config keys set and tensors replaced, renamed or dropped (undefined). */
function scratch(dir: string, opts: { config?: Record<string, unknown>; tensors?: Record<string, Tensor | undefined>; rename?: Record<string, string> } = {}): string {
  return editedCopy(dir, {
    config: (c) => Object.assign(c, opts.config),
    tensors: opts.tensors || opts.rename
      ? (m) => {
          for (const [from, to] of Object.entries(opts.rename ?? {})) {
            m.set(to, m.get(from)!);
            m.delete(from);
          }
          for (const [n, t] of Object.entries(opts.tensors ?? {})) {
            if (t) m.set(n, t);
            else m.delete(n);
          }
        }
      : undefined,
  });
}


// reference key → graph output name
function outputName(key: string, layers: number): string {
  return key === 'hidden_states_penultimate' ? `hidden_states.${layers - 1}` : key;
}

for (const name of ['clip-text-tiny', 'clip-text-proj-tiny']) {
  test(`${name}: every reference output within ${TOL}`, async () => {
    const dir = fixture('models', name);
    const { model, weights, config } = build(dir);
    const layers = config.int('num_hidden_layers');
    const refFile = join(dir, 'reference.safetensors');
    const ref = SafetensorsFile.open(refFile);
    const ids = ref.tensor('input.input_ids');
    const out = await run(model, { dtype: 'int64', dims: ids.shape, data: tensorData(ids) });
    const keys = ref.names.filter((n) => n.startsWith('output.'));
    assert.ok(keys.length >= 3);
    for (const key of keys) {
      const r = readF32(refFile, key);
      const o = out[outputName(key.slice('output.'.length), layers)];
      assert.ok(o, `graph has an output for ${key}`);
      assert.deepEqual(o.dims, r.shape, key);
      const err = relL2(o.data as Float32Array, r.data);
      console.log(`  ${name} ${key}: relL2 ${err.toExponential(2)}`);
      assert.ok(err < TOL, `${key}: relL2 ${err}`);
    }
    assert.deepEqual(weights.unused(), []);
  });
}

test('graph interface: Optimum names, dynamic axes, metadata', () => {
  for (const [name, cls, extra] of [['clip-text-tiny', 'CLIPTextModel', []], ['clip-text-proj-tiny', 'CLIPTextModelWithProjection', ['text_embeds']]] as const) {
    const { model } = build(fixture('models', name));
    const g = model.graph;
    assert.deepEqual(g.inputs.map((v) => [v.name, v.dtype, v.shape]), [['input_ids', 'int64', ['batch_size', 'sequence_length']]]);
    const names = g.outputs.map((v) => v.name).sort();
    assert.deepEqual(names, ['hidden_states.0', 'hidden_states.1', 'hidden_states.2', 'hidden_states.3', 'last_hidden_state', 'pooler_output', ...extra].sort());
    assert.deepEqual(g.outputs.find((v) => v.name === 'last_hidden_state')!.shape!.slice(0, 2), ['batch_size', 'sequence_length']);
    assert.equal(model.metadataProps.get('diffusers.class_name'), cls);
    assert.equal(model.opsetImports.get(''), 17);
  }
});

test('node names are /<module path>/<Op>, initializers carry the checkpoint names', () => {
  const dir = fixture('models', 'clip-text-proj-tiny');
  const { model } = build(dir);
  const nodes = model.graph.nodeList().map((n) => n.name);
  for (const n of nodes) assert.match(n, /^(\/[A-Za-z0-9_.]+)+$/, n);
  for (const expected of [
    '/text_model/embeddings/token_embedding/Gather',
    '/text_model/encoder/layers.0/self_attn/q_proj/MatMul',
    '/text_model/encoder/layers.2/mlp/fc2/Add',
    '/text_model/encoder/layers.1/layer_norm1/LayerNormalization',
    '/text_model/final_layer_norm/LayerNormalization',
    '/text_projection/MatMul',
  ]) assert.ok(nodes.includes(expected), `has node ${expected}`);
  const ckpt = Checkpoint.open(dir).names.sort();
  const weightInits = [...model.graph.initializers.keys()].filter((n) => !n.split('.').pop()!.startsWith('_')).sort();
  assert.deepEqual(weightInits, ckpt);
  // Linear weights are stored [in, out] for MatMul
  assert.deepEqual(model.graph.initializers.get('text_model.encoder.layers.0.mlp.fc1.weight')!.shape, [40, 80]);
});

test('dynamic batch and sequence length: a causal prefix gives the same states', async () => {
  const dir = fixture('models', 'clip-text-tiny');
  const { model } = build(dir);
  const all = refIds(join(dir, 'reference.safetensors'), 'input.input_ids');
  const full = await run(model, ids64([2, 77], all));
  // rows 0, 1, 0 truncated to 12 tokens (each still holds its first eos)
  const S = 12;
  const rows = [0, 1, 0];
  const short = await run(model, ids64([3, S], rows.flatMap((r) => all.slice(r * 77, r * 77 + S))));
  assert.deepEqual(short.last_hidden_state!.dims, [3, S, 32]);
  assert.deepEqual(short.pooler_output!.dims, [3, 32]);
  const D = 32;
  const lhs = full.last_hidden_state!.data as Float32Array;
  const pooled = full.pooler_output!.data as Float32Array;
  rows.forEach((r, i) => {
    const want = Array.from({ length: S }, (_, s) => Array.from(lhs.subarray((r * 77 + s) * D, (r * 77 + s + 1) * D))).flat();
    const got = (short.last_hidden_state!.data as Float32Array).subarray(i * S * D, (i + 1) * S * D);
    assert.ok(relL2(got, want) < 1e-5, `row ${i} states`);
    assert.ok(relL2((short.pooler_output!.data as Float32Array).subarray(i * D, (i + 1) * D), pooled.subarray(r * D, (r + 1) * D)) < 1e-5, `row ${i} pooled`);
  });
});

/** last_hidden_state[b, index[b]] */
function gatherRows(lhs: Float32Array, S: number, D: number, index: number[]): Float32Array {
  const out = new Float32Array(index.length * D);
  index.forEach((s, b) => out.set(lhs.subarray((b * S + s) * D, (b * S + s + 1) * D), b * D));
  return out;
}

test('pooling: first eos_token_id position (0 when absent), or argmax(ids) for legacy eos_token_id 2', async () => {
  const dir = fixture('models', 'clip-text-tiny');
  const S = 8;
  // row 0: eos 999 at 3 and 6; row 1: no eos, largest id 998 at 0; row 2: id 2 at 1, largest 900 at 5
  const ids = [5, 7, 11, 999, 13, 17, 999, 4, 998, 5, 7, 11, 13, 17, 19, 23, 5, 2, 11, 13, 17, 900, 2, 3];
  const cur = await run(build(dir).model, ids64([3, S], ids));
  const curWant = gatherRows(cur.last_hidden_state!.data as Float32Array, S, 32, [3, 0, 0]);
  assert.ok(relL2(cur.pooler_output!.data as Float32Array, curWant) < 1e-6);

  const legacyDir = scratch(dir, { config: { eos_token_id: 2 } });
  try {
    const legacy = await run(build(legacyDir).model, ids64([3, S], ids));
    const want = gatherRows(legacy.last_hidden_state!.data as Float32Array, S, 32, [3, 0, 5]);
    assert.ok(relL2(legacy.pooler_output!.data as Float32Array, want) < 1e-6);
  } finally {
    rmSync(legacyDir, { recursive: true, force: true });
  }
});

test('pipelines: sd15-tiny text_encoder (fp16 weights) reproduces prompt_embeds and negative_prompt_embeds', async () => {
  const loop = fixture('loops', 'e2e_sd15_tiny_cat.safetensors');
  const { model } = build(fixture('pipelines', 'sd15-tiny', 'text_encoder'));
  for (const [idsKey, refKey] of [['input.prompt_input_ids', 'trace.prompt_embeds'], ['input.negative_input_ids', 'trace.negative_prompt_embeds']]) {
    const out = await run(model, ids64([1, 77], refIds(loop, idsKey!)));
    const r = readF32(loop, refKey!);
    assert.deepEqual(out.last_hidden_state!.dims, r.shape);
    const err = relL2(out.last_hidden_state!.data as Float32Array, r.data);
    console.log(`  sd15-tiny ${refKey}: relL2 ${err.toExponential(2)}`);
    assert.ok(err < TOL, `${refKey}: relL2 ${err}`);
  }
});

test('pipelines: flux-tiny text_encoder pooler_output reproduces pooled_prompt_embeds', async () => {
  const loop = fixture('loops', 'e2e_flux_tiny_fox.safetensors');
  const { model } = build(fixture('pipelines', 'flux-tiny', 'text_encoder'));
  const out = await run(model, ids64([1, 77], refIds(loop, 'input.clip_input_ids')));
  const r = readF32(loop, 'trace.pooled_prompt_embeds');
  assert.deepEqual(out.pooler_output!.dims, r.shape);
  const err = relL2(out.pooler_output!.data as Float32Array, r.data);
  console.log(`  flux-tiny trace.pooled_prompt_embeds: relL2 ${err.toExponential(2)}`);
  assert.ok(err < TOL, `relL2 ${err}`);
});

test('unsupported config values are refused, naming the key', () => {
  const dir = fixture('models', 'clip-text-tiny');
  const cases: [Record<string, unknown>, string][] = [
    [{ hidden_act: 'selu' }, 'hidden_act'],
    [{ architectures: ['CLIPVisionModel'] }, 'architectures'],
    [{ model_type: 'clip' }, 'model_type'],
    [{ num_attention_heads: 5 }, 'num_attention_heads'],
    [{ layer_norm_eps: 'small' }, 'layer_norm_eps'],
  ];
  for (const [edit, key] of cases) {
    const d = scratch(dir, { config: edit });
    try {
      expectFormatError(() => build(d), 'CONFIG_VALUE', `'${key}'`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
});

test('a missing or misshapen weight is refused, naming the tensor', () => {
  const dir = fixture('models', 'clip-text-proj-tiny');
  const missing = scratch(dir, { tensors: { 'text_model.encoder.layers.1.mlp.fc1.bias': undefined } });
  const wrong = scratch(dir, { tensors: { 'text_projection.weight': new InMemoryTensor('float32', [40, 24], new Float32Array(960)) } });
  try {
    expectFormatError(() => build(missing), 'TENSOR_MISSING', 'text_model.encoder.layers.1.mlp.fc1.bias');
    expectFormatError(() => build(wrong), 'WEIGHT_SHAPE', 'text_projection.weight', '[24, 40]');
  } finally {
    rmSync(missing, { recursive: true, force: true });
    rmSync(wrong, { recursive: true, force: true });
  }
});
