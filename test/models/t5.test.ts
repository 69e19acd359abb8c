// T5EncoderModel against the transformers references, and its relative position buckets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder } from '../../src/ir/builder.js';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor, tensorData, type Tensor } from '../../src/core/tensor.js';
import { Ctx } from '../../src/models/blocks/context.js';
import { t5BucketTable, t5PositionBias, t5RelativeBucket } from '../../src/models/blocks/t5-relative-position.js';
import { ModelConfig } from '../../src/models/config.js';
import { buildT5EncoderModel } from '../../src/models/t5-encoder.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { toFloat32 } from '../../src/core/float.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, expectFormatError, fixture, readF32, relL2 } from '../helpers.js';

const TOL = 1e-4;
const TINY = fixture('models', 't5-encoder-tiny');
const BIAS = 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight';

function build(dir: string): { model: Model; weights: Weights } {
  const weights = new Weights(Checkpoint.open(dir));
  return { model: buildT5EncoderModel(ModelConfig.load(dir), weights).model!, weights };
}

function ids64(dims: number[], ids: number[]): HostTensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(ids.map(BigInt)) };
}

function refIds(file: string, key: string): number[] {
  return Array.from(tensorData(SafetensorsFile.open(file).tensor(key)) as BigInt64Array, Number);
}

async function run(model: Model, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await Session.create(model);
  try {
    return (await s.run(feeds)).outputs;
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


test(`t5-encoder-tiny: last_hidden_state within ${TOL}`, async () => {
  const refFile = join(TINY, 'reference.safetensors');
  const ref = SafetensorsFile.open(refFile);
  const { model, weights } = build(TINY);
  const ids = ref.tensor('input.input_ids');
  const out = await run(model, { input_ids: { dtype: 'int64', dims: ids.shape, data: tensorData(ids) } });
  const keys = ref.names.filter((n) => n.startsWith('output.'));
  assert.deepEqual(keys, ['output.last_hidden_state']);
  for (const key of keys) {
    const r = readF32(refFile, key);
    const o = out[key.slice('output.'.length)]!;
    assert.deepEqual(o.dims, r.shape);
    const err = relL2(o.data as Float32Array, r.data);
    console.log(`  t5-encoder-tiny ${key}: relL2 ${err.toExponential(2)}`);
    assert.ok(err < TOL, `${key}: relL2 ${err}`);
  }
  assert.deepEqual(weights.unused(), []);
});

test('pipelines: flux-tiny text_encoder_2 (bf16 weights) reproduces prompt_embeds', async () => {
  const loop = fixture('loops', 'e2e_flux_tiny_fox.safetensors');
  const { model } = build(fixture('pipelines', 'flux-tiny', 'text_encoder_2'));
  const out = await run(model, { input_ids: ids64([1, 32], refIds(loop, 'input.t5_input_ids')) });
  const r = readF32(loop, 'trace.prompt_embeds');
  assert.deepEqual(out.last_hidden_state!.dims, r.shape);
  const err = relL2(out.last_hidden_state!.data as Float32Array, r.data);
  console.log(`  flux-tiny trace.prompt_embeds: relL2 ${err.toExponential(2)}`);
  assert.ok(err < TOL, `relL2 ${err}`);
});

test('graph interface, node names and initializer names', () => {
  const { model } = build(TINY);
  const g = model.graph;
  assert.deepEqual(g.inputs.map((v) => [v.name, v.dtype, v.shape]), [['input_ids', 'int64', ['batch_size', 'sequence_length']]]);
  assert.deepEqual(g.outputs.map((v) => [v.name, v.shape]), [['last_hidden_state', ['batch_size', 'sequence_length', 32]]]);
  assert.equal(model.metadataProps.get('diffusers.class_name'), 'T5EncoderModel');
  assert.equal(model.opsetImports.get(''), 17);
  const nodes = g.nodeList().map((n) => n.name);
  for (const n of nodes) assert.match(n, /^(\/[A-Za-z0-9_.]+)+$/, n);
  for (const expected of [
    '/encoder/embed_tokens/Gather',
    '/encoder/block.0/layer.0/SelfAttention/relative_attention_bias/Gather_1',
    '/encoder/block.1/layer.0/SelfAttention/q/MatMul',
    '/encoder/block.2/layer.1/DenseReluDense/wi_0/MatMul',
    '/encoder/block.2/layer.1/layer_norm/ReduceMean',
    '/encoder/final_layer_norm/Mul_1',
  ]) assert.ok(nodes.includes(expected), `has node ${expected}`);
  // one bias computation, shared by every block
  assert.equal(nodes.filter((n) => n.includes('relative_attention_bias')).length, nodes.filter((n) => n.startsWith('/encoder/block.0/layer.0/SelfAttention/relative_attention_bias/')).length);
  const ckpt = Checkpoint.open(TINY).names.sort();
  const weightInits = [...g.initializers.keys()].filter((n) => !n.split('.').pop()!.startsWith('_')).sort();
  assert.deepEqual(weightInits, ckpt);
});

test('relative position buckets: transformers values, incl. the exact powers of two', () => {
  // bidirectional, 32 buckets, max_distance 128: 16 per side, 8 exact, then log-spaced
  // bucket boundaries 8, 12, 16, 23, 32, 46, 64, 91 (2·log2(d/8) reaching an integer)
  const neg = [0, 1, 2, 7, 8, 11, 12, 15, 16, 22, 23, 31, 32, 45, 46, 63, 64, 90, 91, 127, 128, 1000];
  const want = [0, 1, 2, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 15, 15];
  neg.forEach((d, i) => {
    assert.equal(t5RelativeBucket(-d, 32, 128), want[i], `−${d}`);
    if (d > 0) assert.equal(t5RelativeBucket(d, 32, 128), want[i]! + 16, `+${d}`);
  });
  const { table, k } = t5BucketTable(32, 128);
  assert.equal(k, 128);
  assert.equal(table.length, 257);
  assert.equal(table[0], 15);
  assert.equal(table[256], 31);
});

test('relative position bias for a dynamic length past max_distance matches the bucket table', async () => {
  const S = 300;
  const b = new GraphBuilder();
  const c = new Ctx(b, new Weights(Checkpoint.open(TINY)));
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const bias = c.scope('encoder', () => c.scope('block.0', () => c.scope('layer.0', () => c.scope('SelfAttention', () => t5PositionBias(c, ids, 32, 128, 4)))));
  b.output(bias, 'bias', 'float32');
  const out = await run(b.model(), { input_ids: ids64([1, S], Array(S).fill(0)) });
  assert.deepEqual(out.bias!.dims, [1, 4, S, S]);
  const w = toFloat32(Checkpoint.open(TINY).tensor(BIAS));
  const want = new Float32Array(4 * S * S);
  for (let h = 0; h < 4; h++) {
    for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) want[(h * S + i) * S + j] = w[t5RelativeBucket(j - i, 32, 128) * 4 + h]!;
  }
  assert.deepEqual(out.bias!.data, want);
});

test('dynamic batch and sequence length', async () => {
  const { model } = build(TINY);
  const ids = Array.from({ length: 3 * 150 }, (_, i) => (i * 7) % 500);
  const out = await run(model, { input_ids: ids64([3, 150], ids) });
  assert.deepEqual(out.last_hidden_state!.dims, [3, 150, 32]);
  assert.ok((out.last_hidden_state!.data as Float32Array).every(Number.isFinite));
});

test('embeddings under encoder.embed_tokens.weight instead of shared.weight give the same graph output', async () => {
  const dir = scratch(TINY, { rename: { 'shared.weight': 'encoder.embed_tokens.weight' } });
  const none = scratch(TINY, { tensors: { 'shared.weight': undefined } });
  try {
    const ref = SafetensorsFile.open(join(TINY, 'reference.safetensors')).tensor('input.input_ids');
    const feeds = { input_ids: { dtype: 'int64' as const, dims: ref.shape, data: tensorData(ref) } };
    const { model } = build(dir);
    assert.ok(model.graph.initializers.has('encoder.embed_tokens.weight'));
    const out = await run(model, feeds);
    const r = readF32(join(TINY, 'reference.safetensors'), 'output.last_hidden_state');
    assert.ok(relL2(out.last_hidden_state!.data as Float32Array, r.data) < TOL);
    expectFormatError(() => build(none), 'TENSOR_MISSING', 'shared.weight', 'encoder.embed_tokens.weight');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(none, { recursive: true, force: true });
  }
});

test('T5 v1.0 feed-forward (relu, wi → wo) builds and runs', async () => {
  const wi: Record<string, string> = {};
  const drop: Record<string, undefined> = {};
  for (let i = 0; i < 3; i++) {
    wi[`encoder.block.${i}.layer.1.DenseReluDense.wi_0.weight`] = `encoder.block.${i}.layer.1.DenseReluDense.wi.weight`;
    drop[`encoder.block.${i}.layer.1.DenseReluDense.wi_1.weight`] = undefined;
  }
  const dir = scratch(TINY, { config: { feed_forward_proj: 'relu', dense_act_fn: 'relu', is_gated_act: false }, rename: wi, tensors: drop });
  try {
    const { model, weights } = build(dir);
    assert.deepEqual(weights.unused(), []);
    assert.ok(model.graph.nodeList().some((n) => n.name === '/encoder/block.0/layer.1/DenseReluDense/Relu'));
    const out = await run(model, { input_ids: ids64([1, 5], [3, 1, 4, 1, 5]) });
    assert.deepEqual(out.last_hidden_state!.dims, [1, 5, 32]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unsupported config values are refused, naming the key', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ feed_forward_proj: 'gated-swiglu' }, 'feed_forward_proj'],
    [{ dense_act_fn: 'selu' }, 'dense_act_fn'],
    [{ model_type: 'umt5' }, 'model_type'],
    [{ architectures: ['T5ForConditionalGeneration'] }, 'architectures'],
    [{ is_gated_act: 'yes' }, 'is_gated_act'],
  ];
  for (const [edit, key] of cases) {
    const d = scratch(TINY, { config: edit });
    try {
      expectFormatError(() => build(d), 'CONFIG_VALUE', `'${key}'`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
});

test('a missing or misshapen weight is refused, naming the tensor', () => {
  const missing = scratch(TINY, { tensors: { 'encoder.block.1.layer.1.DenseReluDense.wi_1.weight': undefined } });
  const wrong = scratch(TINY, { tensors: { [BIAS]: new InMemoryTensor('float32', [16, 4], new Float32Array(64)) } });
  try {
    expectFormatError(() => build(missing), 'TENSOR_MISSING', 'encoder.block.1.layer.1.DenseReluDense.wi_1.weight');
    expectFormatError(() => build(wrong), 'WEIGHT_SHAPE', BIAS, '[32, 4]');
  } finally {
    rmSync(missing, { recursive: true, force: true });
    rmSync(wrong, { recursive: true, force: true });
  }
});
