import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor, type Tensor } from '../../src/core/tensor.js';
import { sincos2dPosEmbed } from '../../src/models/blocks/transformer-embeddings.js';
import { ModelConfig } from '../../src/models/config.js';
import { buildSD3Transformer2DModel } from '../../src/models/sd3-transformer-2d.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { toFloat32 } from '../../src/core/float.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, fixture, readF32, relL2 } from '../helpers.js';

const DIR = fixture('models', 'sd3-transformer-tiny');
const REF = join(DIR, 'reference.safetensors');
const D = 32; // num_attention_heads 4 × attention_head_dim 8

function build(dir: string): { model: Model; weights: Weights } {
  const weights = new Weights(Checkpoint.open(dir));
  return { model: buildSD3Transformer2DModel(ModelConfig.load(dir), weights).model!, weights };
}

function referenceFeeds(t: number): Record<string, HostTensor> {
  const r = (k: string): HostTensor => {
    const x = readF32(REF, `input.${k}`);
    return { dtype: 'float32', dims: x.shape, data: x.data };
  };
  return {
    hidden_states: r('hidden_states'),
    encoder_hidden_states: r('encoder_hidden_states'),
    pooled_projections: r('pooled_projections'),
    timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(t, t) },
  };
}

async function runAll(model: Model): Promise<Map<string, number>> {
  const s = await Session.create(model);
  const errs = new Map<string, number>();
  for (const key of SafetensorsFile.open(REF).names.filter((k) => k.startsWith('output.'))) {
    const t = Number(/^output\.sample\.t(.+)$/.exec(key)![1]);
    const { outputs } = await s.run(referenceFeeds(t));
    const ref = readF32(REF, key);
    assert.deepEqual(outputs.out_hidden_states!.dims, ref.shape);
    errs.set(key, relL2(outputs.out_hidden_states!.data as Float32Array, ref.data));
  }
  await s.release();
  return errs;
}



const seeded = (shape: number[], seed: number, scale = 0.2) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return new InMemoryTensor('float32', shape, Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * scale));
};

test('sd3-transformer-tiny matches diffusers at every reference timestep', async () => {
  const errs = await runAll(build(DIR).model);
  assert.equal(errs.size, 3);
  for (const [key, err] of errs) {
    console.log(`sd3-transformer-tiny ${key}: relL2 ${err.toExponential(2)}`);
    assert.ok(err < 1e-4, `${key}: relL2 ${err}`);
  }
});

test('sd3 graph: Optimum input/output names, dynamic axes, metadata', () => {
  const { model } = build(DIR);
  const g = model.graph;
  assert.deepEqual(g.inputs.map((v) => [v.name, v.shape]), [
    ['hidden_states', ['batch_size', 16, 'height', 'width']],
    ['encoder_hidden_states', ['batch_size', 'sequence_length', 32]],
    ['pooled_projections', ['batch_size', 32]],
    ['timestep', ['batch_size']],
  ]);
  assert.deepEqual(g.outputs.map((v) => [v.name, v.shape]), [['out_hidden_states', ['batch_size', 16, 'height', 'width']]]);
  assert.equal(model.metadataProps.get('diffusers.class_name'), 'SD3Transformer2DModel');
  assert.equal(model.opsetImports.get(''), 17);
});

test('sd3 graph: node names are module paths, initializers are the checkpoint tensors', () => {
  const { model, weights } = build(DIR);
  const names = new Set([...model.graph.nodes()].map((n) => n.name));
  for (const n of names) assert.match(n, /^(\/[A-Za-z0-9_.]+)+$/);
  for (const expected of [
    '/pos_embed/proj/Conv', '/time_text_embed/timestep_embedder/linear_1/MatMul', '/time_text_embed/text_embedder/linear_2/MatMul',
    '/context_embedder/MatMul', '/transformer_blocks.0/norm1_context/linear/MatMul', '/transformer_blocks.0/attn/to_add_out/MatMul',
    '/transformer_blocks.1/norm1_context/norm/LayerNormalization', '/transformer_blocks.1/ff/net.2/MatMul', '/norm_out/linear/MatMul', '/proj_out/MatMul',
  ]) assert.ok(names.has(expected), `missing node ${expected}`);
  // the last block is context_pre_only: no context output projection or feed-forward
  assert.ok(![...names].some((n) => n.startsWith('/transformer_blocks.1/attn/to_add_out') || n.startsWith('/transformer_blocks.1/ff_context')));
  const named = [...model.graph.initializers.keys()].filter((k) => !/(^|\.)_[a-z]+_\d+/.test(k)).sort();
  assert.deepEqual(named, [...Checkpoint.open(DIR).names].sort());
  assert.deepEqual(weights.unused(), []);
});

test('the sincos pos-embed grid computed in JS equals the one diffusers saved', () => {
  const stored = toFloat32(Checkpoint.open(DIR).tensor('pos_embed.pos_embed'));
  // pos_embed_max_size 16, base size sample_size / patch_size = 4
  const ours = sincos2dPosEmbed(D, 16, 4);
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - stored[i]!));
  assert.ok(maxDiff < 1e-6, `max diff ${maxDiff}`);
});

test('a checkpoint without the pos_embed buffer gets the computed grid and the same outputs', async () => {
  const dir = editedCopy(DIR, { tensors: (m) => m.delete('pos_embed.pos_embed') });
  const errs = await runAll(build(dir).model);
  for (const [key, err] of errs) assert.ok(err < 1e-4, `${key}: relL2 ${err}`);
});

test('sd3 graph takes other sizes (crops a different window of the grid)', async () => {
  const s = await Session.create(build(DIR).model);
  const [h, w] = [12, 10];
  const { outputs } = await s.run({
    hidden_states: { dtype: 'float32', dims: [1, 16, h, w], data: Float32Array.from({ length: 16 * h * w }, (_, i) => Math.sin(i * 0.3)) },
    encoder_hidden_states: { dtype: 'float32', dims: [1, 7, 32], data: Float32Array.from({ length: 7 * 32 }, (_, i) => Math.cos(i * 0.2)) },
    pooled_projections: { dtype: 'float32', dims: [1, 32], data: new Float32Array(32).fill(0.3) },
    timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(300) },
  });
  assert.deepEqual(outputs.out_hidden_states!.dims, [1, 16, h, w]);
  assert.ok((outputs.out_hidden_states!.data as Float32Array).every(Number.isFinite));
  await s.release();
});

/** SD3.5-medium layout: norm1 with 9 chunks and an attn2 self-attention in the listed blocks. */
function dualTensors(blocks: number[], gate2Bias: number) {
  return (m: Map<string, Tensor>) => {
    for (const i of blocks) {
      const p = `transformer_blocks.${i}`;
      const w = toFloat32(m.get(`${p}.norm1.linear.weight`)!);
      const bias = toFloat32(m.get(`${p}.norm1.linear.bias`)!);
      const w9 = new Float32Array(9 * D * D);
      w9.set(w);
      const b9 = new Float32Array(9 * D);
      b9.set(bias);
      b9.fill(gate2Bias, 8 * D); // gate_msa2 is the last chunk
      m.set(`${p}.norm1.linear.weight`, new InMemoryTensor('float32', [9 * D, D], w9));
      m.set(`${p}.norm1.linear.bias`, new InMemoryTensor('float32', [9 * D], b9));
      for (const [j, name] of ['to_q', 'to_k', 'to_v', 'to_out.0'].entries()) {
        m.set(`${p}.attn2.${name}.weight`, seeded([D, D], i * 10 + j));
        m.set(`${p}.attn2.${name}.bias`, seeded([D], i * 10 + j + 5, 0.05));
      }
    }
  };
}

test('dual_attention_layers: with gate_msa2 = 0 the SD3.5 block reduces to the reference block', async () => {
  const dir = editedCopy(DIR, { config: (c) => { c.dual_attention_layers = [0, 1]; }, tensors: dualTensors([0, 1], 0) });
  const { model, weights } = build(dir);
  const names = [...model.graph.nodes()].map((n) => n.name);
  assert.ok(names.includes('/transformer_blocks.0/attn2/to_out.0/MatMul') && names.includes('/transformer_blocks.1/attn2/to_q/MatMul'));
  assert.deepEqual(weights.unused(), []);
  const errs = await runAll(model);
  for (const [key, err] of errs) assert.ok(err < 1e-4, `${key}: relL2 ${err}`);
  // and a non-zero gate lets attn2 through
  const open = await runAll(build(editedCopy(DIR, { config: (c) => { c.dual_attention_layers = [0]; }, tensors: dualTensors([0], 0.5) })).model);
  for (const [key, err] of open) assert.ok(err > 1e-2, `${key}: attn2 had no effect (relL2 ${err})`);
});

test('qk_norm rms_norm adds per-head RMSNorm to both streams (and attn2)', async () => {
  const withNorms = (m: Map<string, Tensor>) => {
    for (const i of [0, 1]) for (const [j, n] of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k'].entries()) {
      m.set(`transformer_blocks.${i}.attn.${n}.weight`, new InMemoryTensor('float32', [8], Float32Array.from({ length: 8 }, (_, k) => 1 + 0.1 * Math.sin(k + j + i))));
    }
  };
  const { model, weights } = build(editedCopy(DIR, { config: (c) => { c.qk_norm = 'rms_norm'; }, tensors: withNorms }));
  const names = [...model.graph.nodes()].map((n) => n.name);
  for (const n of ['norm_q', 'norm_k', 'norm_added_q', 'norm_added_k']) assert.ok(names.some((x) => x.startsWith(`/transformer_blocks.1/attn/${n}/`)), n);
  assert.deepEqual(weights.unused(), []);
  const errs = await runAll(model);
  for (const [key, err] of errs) assert.ok(err > 1e-3 && err < 10, `${key}: relL2 ${err}`);

  // SD3.5 medium: dual attention blocks carry norm_q/norm_k on attn2 too
  const both = (m: Map<string, Tensor>) => {
    withNorms(m);
    dualTensors([0], 0.5)(m);
    m.set('transformer_blocks.0.attn2.norm_q.weight', new InMemoryTensor('float32', [8], new Float32Array(8).fill(1)));
  };
  const dir = editedCopy(DIR, { config: (c) => { c.qk_norm = 'rms_norm'; c.dual_attention_layers = [0]; }, tensors: both });
  assertFormatError(() => build(dir), 'TENSOR_MISSING', 'transformer_blocks.0.attn2.norm_k.weight');
});

function assertFormatError(fn: () => unknown, code: string, mentions: string) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.ok(e.message.includes(mentions), `message '${e.message}' should mention '${mentions}'`);
    return true;
  });
}

test('unsupported config values fail naming the key', () => {
  for (const [key, value] of [
    ['qk_norm', 'layer_norm'], ['dual_attention_layers', [2]], ['dual_attention_layers', 'all'], ['pos_embed_max_size', null],
    ['caption_projection_dim', 48], ['patch_size', '2'],
  ] as const) {
    const dir = editedCopy(DIR, { config: (c) => { c[key] = value; } });
    assertFormatError(() => build(dir), 'CONFIG_VALUE', `'${key}'`);
  }
});

test('a missing or misshapen weight fails naming the tensor', () => {
  const missing = 'transformer_blocks.1.norm1_context.linear.weight';
  assertFormatError(() => build(editedCopy(DIR, { tensors: (m) => m.delete(missing) })), 'TENSOR_MISSING', missing);

  const bad = 'pos_embed.proj.weight';
  const reshaped = (m: Map<string, Tensor>) => m.set(bad, new InMemoryTensor('float32', [32, 16, 1, 4], m.get(bad)!.bytes().slice()));
  assertFormatError(() => build(editedCopy(DIR, { tensors: reshaped })), 'WEIGHT_SHAPE', bad);

  // qk_norm declared but the checkpoint has no norm weights
  assertFormatError(() => build(editedCopy(DIR, { config: (c) => { c.qk_norm = 'rms_norm'; } })), 'TENSOR_MISSING', 'transformer_blocks.0.attn.norm_q.weight');
});
