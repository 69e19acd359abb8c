import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor, type Tensor } from '../../src/core/tensor.js';
import { buildFluxTransformer2DModel } from '../../src/models/flux-transformer-2d.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, fixture, readF32, relL2 } from '../helpers.js';

const DIR = fixture('models', 'flux-transformer-tiny');
const REF = join(DIR, 'reference.safetensors');

function build(dir: string): { model: Model; weights: Weights } {
  const weights = new Weights(Checkpoint.open(dir));
  return { model: buildFluxTransformer2DModel(ModelConfig.load(dir), weights).model!, weights };
}

const host = (x: { data: Float32Array; shape: number[] }, dims = x.shape): HostTensor => ({ dtype: 'float32', dims, data: x.data });

/** The reference inputs; the ids are stored with a batch axis [1, N, 3] that the graph does not take. */
function referenceFeeds(t: number, guidance = true): Record<string, HostTensor> {
  const r = (k: string) => readF32(REF, `input.${k}`);
  const img = r('img_ids');
  const txt = r('txt_ids');
  const feeds: Record<string, HostTensor> = {
    hidden_states: host(r('hidden_states')),
    encoder_hidden_states: host(r('encoder_hidden_states')),
    pooled_projections: host(r('pooled_projections')),
    timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(t) },
    img_ids: host(img, img.shape.slice(1)),
    txt_ids: host(txt, txt.shape.slice(1)),
  };
  if (guidance) feeds.guidance = host(r('guidance'));
  return feeds;
}



test('flux-transformer-tiny matches diffusers at every reference timestep', async () => {
  const { model } = build(DIR);
  const s = await Session.create(model);
  const keys = SafetensorsFile.open(REF).names.filter((k) => k.startsWith('output.'));
  assert.equal(keys.length, 3);
  for (const key of keys) {
    const t = Number(/^output\.sample\.t(.+)$/.exec(key)![1]);
    const { outputs } = await s.run(referenceFeeds(t));
    const ref = readF32(REF, key);
    assert.deepEqual(outputs.out_hidden_states!.dims, ref.shape);
    const err = relL2(outputs.out_hidden_states!.data as Float32Array, ref.data);
    console.log(`flux-transformer-tiny ${key}: relL2 ${err.toExponential(2)}`);
    assert.ok(err < 1e-4, `${key}: relL2 ${err}`);
  }
  await s.release();
});

test('flux graph: Optimum input/output names, dynamic axes, metadata', () => {
  const { model } = build(DIR);
  const g = model.graph;
  assert.deepEqual(g.inputs.map((v) => v.name), ['hidden_states', 'encoder_hidden_states', 'pooled_projections', 'timestep', 'img_ids', 'txt_ids', 'guidance']);
  assert.deepEqual(g.inputs.map((v) => v.shape), [
    ['batch_size', 'packed_height_width', 64], ['batch_size', 'sequence_length', 32], ['batch_size', 32], ['batch_size'],
    ['packed_height_width', 3], ['sequence_length', 3], ['batch_size'],
  ]);
  assert.deepEqual(g.outputs.map((v) => [v.name, v.shape]), [['out_hidden_states', ['batch_size', 'packed_height_width', 64]]]);
  assert.equal(model.metadataProps.get('diffusers.class_name'), 'FluxTransformer2DModel');
  assert.equal(model.metadataProps.get('guidance_embeds'), 'true');
  assert.equal(model.opsetImports.get(''), 17);
});

test('flux graph: node names are module paths, initializers are the checkpoint tensors', () => {
  const { model, weights } = build(DIR);
  const names = new Set([...model.graph.nodes()].map((n) => n.name));
  for (const n of names) assert.match(n, /^(\/[A-Za-z0-9_.]+)+$/);
  for (const expected of [
    '/x_embedder/MatMul', '/context_embedder/Add', '/time_text_embed/guidance_embedder/linear_1/MatMul',
    '/transformer_blocks.0/norm1/linear/MatMul', '/transformer_blocks.0/attn/to_q/MatMul', '/transformer_blocks.1/attn/to_add_out/MatMul',
    '/transformer_blocks.1/ff_context/net.2/MatMul', '/single_transformer_blocks.2/proj_mlp/MatMul', '/single_transformer_blocks.2/proj_out/MatMul',
    '/norm_out/linear/MatMul', '/proj_out/MatMul',
  ]) assert.ok(names.has(expected), `missing node ${expected}`);
  // anonymous constants are `<module>._<hint>_<n>`; everything else is a checkpoint tensor
  const named = [...model.graph.initializers.keys()].filter((k) => !/(^|\.)_[a-z]+_\d+/.test(k)).sort();
  assert.deepEqual(named, [...Checkpoint.open(DIR).names].sort());
  assert.deepEqual(weights.unused(), []);
});

test('flux graph handles a batch: two copies of the reference input at two timesteps', async () => {
  const { model } = build(DIR);
  const s = await Session.create(model);
  const one = referenceFeeds(0);
  const twice = (x: HostTensor): HostTensor => {
    const d = x.data as Float32Array;
    const data = new Float32Array(d.length * 2);
    data.set(d);
    data.set(d, d.length);
    return { dtype: 'float32', dims: [2, ...x.dims.slice(1)], data };
  };
  const { outputs } = await s.run({
    ...one,
    hidden_states: twice(one.hidden_states!),
    encoder_hidden_states: twice(one.encoder_hidden_states!),
    pooled_projections: twice(one.pooled_projections!),
    guidance: twice(one.guidance!),
    timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(1.0, 0.05) },
  });
  const out = outputs.out_hidden_states!.data as Float32Array;
  const half = out.length / 2;
  assert.ok(relL2(out.subarray(0, half), readF32(REF, 'output.sample.t1.0').data) < 1e-4);
  assert.ok(relL2(out.subarray(half), readF32(REF, 'output.sample.t0.05').data) < 1e-4);
  await s.release();
});

test('the BF16 pipeline transformer builds and is the rounded tiny model', async () => {
  const { model } = build(fixture('pipelines', 'flux-tiny', 'transformer'));
  const s = await Session.create(model);
  const { outputs } = await s.run(referenceFeeds(0.5));
  // only the weights' rounding to bfloat16 separates them (about 4e-3 here)
  const err = relL2(outputs.out_hidden_states!.data as Float32Array, readF32(REF, 'output.sample.t0.5').data);
  console.log(`flux-tiny pipeline (BF16 weights) vs F32 reference: relL2 ${err.toExponential(2)}`);
  assert.ok(err < 1e-2, `relL2 ${err}`);
  await s.release();
});

test('a schnell-style transformer (no guidance_embeds) has no guidance input and runs', async () => {
  const dir = fixture('trained', 'shapes-flux', 'transformer');
  const { model, weights } = build(dir);
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ['hidden_states', 'encoder_hidden_states', 'pooled_projections', 'timestep', 'img_ids', 'txt_ids']);
  assert.equal(model.metadataProps.get('guidance_embeds'), 'false');
  assert.deepEqual(weights.unused(), []);
  const s = await Session.create(model);
  const n = 64;
  const ids = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) { ids[i * 3 + 1] = Math.floor(i / 8); ids[i * 3 + 2] = i % 8; }
  const { outputs } = await s.run({
    hidden_states: { dtype: 'float32', dims: [1, n, 64], data: Float32Array.from({ length: n * 64 }, (_, i) => Math.cos(i)) },
    encoder_hidden_states: { dtype: 'float32', dims: [1, 32, 64], data: Float32Array.from({ length: 32 * 64 }, (_, i) => Math.sin(i) * 0.1) },
    pooled_projections: { dtype: 'float32', dims: [1, 64], data: new Float32Array(64).fill(0.1) },
    timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(0.7) },
    img_ids: { dtype: 'float32', dims: [n, 3], data: ids },
    txt_ids: { dtype: 'float32', dims: [32, 3], data: new Float32Array(96) },
  });
  assert.deepEqual(outputs.out_hidden_states!.dims, [1, n, 64]);
  assert.ok((outputs.out_hidden_states!.data as Float32Array).every(Number.isFinite));
  await s.release();
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
  for (const [key, value] of [['guidance_embeds', 'yes'], ['axes_dims_rope', [4, 6, 8]], ['axes_dims_rope', [5, 5, 6]], ['num_layers', 1.5]] as const) {
    const dir = editedCopy(DIR, { config: (c) => { c[key] = value; } });
    assertFormatError(() => build(dir), 'CONFIG_VALUE', `'${key}'`);
  }
});

test('a missing or misshapen weight fails naming the tensor', () => {
  const missing = 'transformer_blocks.1.attn.norm_added_k.weight';
  assertFormatError(() => build(editedCopy(DIR, { tensors: (m) => m.delete(missing) })), 'TENSOR_MISSING', missing);

  const bad = 'single_transformer_blocks.0.proj_out.weight';
  const reshaped = (m: Map<string, Tensor>) => {
    const t = m.get(bad)!;
    m.set(bad, new InMemoryTensor('float32', [t.shape[1]!, t.shape[0]!], t.bytes().slice()));
  };
  assertFormatError(() => build(editedCopy(DIR, { tensors: reshaped })), 'WEIGHT_SHAPE', bad);

  // guidance_embeds true needs the guidance embedder
  const noGuidance = fixture('trained', 'shapes-flux', 'transformer');
  assertFormatError(() => build(editedCopy(noGuidance, { config: (c) => { c.guidance_embeds = true; } })), 'TENSOR_MISSING', 'time_text_embed.guidance_embedder.linear_1.weight');
});
