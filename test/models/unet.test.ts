import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ModelFormatError } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor } from '../../src/core/tensor.js';
import { ModelConfig } from '../../src/models/config.js';
import { buildUNet2DConditionModel } from '../../src/models/unet-2d-condition.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, fixture, readF32, relL2 } from '../helpers.js';

const TOL = 1e-4;
const TIMESTEPS = [999, 501, 1];

function build(dir: string): { model: Model; weights: Weights } {
  const weights = new Weights(Checkpoint.open(dir));
  const { model } = buildUNet2DConditionModel(ModelConfig.load(dir), weights);
  // every tensor of the checkpoint went into the graph (a layer left out would leave its weights unread)
  assert.deepEqual(weights.unused(), [], `${dir}: checkpoint tensors the builder did not read`);
  return { model, weights };
}

/** The fixture UNets, built once for the tests that only read or run them (none changes the graph). */
const builtFixtures = new Map<string, { model: Model; weights: Weights }>();
function fixtureBuild(dir: string): { model: Model; weights: Weights } {
  let b = builtFixtures.get(dir);
  if (!b) builtFixtures.set(dir, (b = build(dir)));
  return b;
}

function f32(r: { data: Float32Array; shape: number[] }): HostTensor {
  return { dtype: 'float32', dims: r.shape, data: r.data };
}

function refFeeds(name: string): Record<string, HostTensor> {
  const file = fixture('models', name, 'reference.safetensors');
  const feeds: Record<string, HostTensor> = {};
  for (const key of SafetensorsFile.open(file).names) if (key.startsWith('input.')) feeds[key.slice(6)] = f32(readF32(file, key));
  return feeds;
}

/** Runs the reference inputs at every timestep and returns the worst relL2 over output.sample.t*. */
async function compareWithReference(name: string, model: Model, extra: Record<string, HostTensor> = {}, batchTimestep = true): Promise<number[]> {
  const file = fixture('models', name, 'reference.safetensors');
  const outKeys = SafetensorsFile.open(file).names.filter((k) => k.startsWith('output.'));
  assert.deepEqual(outKeys.sort(), TIMESTEPS.map((t) => `output.sample.t${t}`).sort());
  const feeds = { ...refFeeds(name), ...extra };
  const batch = feeds.sample!.dims[0]!;
  const s = await Session.create(model);
  const errs: number[] = [];
  try {
    for (const t of TIMESTEPS) {
      const timestep: HostTensor = batchTimestep ? { dtype: 'float32', dims: [batch], data: new Float32Array(batch).fill(t) } : { dtype: 'float32', dims: [1], data: Float32Array.from([t]) };
      const { outputs } = await s.run({ ...feeds, timestep });
      const out = outputs.out_sample!;
      const ref = readF32(file, `output.sample.t${t}`);
      assert.deepEqual(out.dims, ref.shape);
      errs.push(relL2(out.data as Float32Array, ref.data));
    }
  } finally {
    await s.release();
  }
  return errs;
}

function withScratch<T>(from: string, edit: Parameters<typeof editedCopy>[1], fn: (dir: string) => T): T {
  const dir = editedCopy(from, edit);
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertConfigError(fn: () => unknown, key: string): void {
  assert.throws(fn, (e: unknown) => e instanceof ModelFormatError && e.code === 'CONFIG_VALUE' && e.message.includes(`'${key}'`), `expected a CONFIG_VALUE error naming '${key}'`);
}

const SD15 = fixture('models', 'sd15-unet-tiny');
const SDXL = fixture('models', 'sdxl-unet-tiny');

test('UNet SD 1.x: matches diffusers at every timestep ([B] and [1] timesteps)', async (t) => {
  const { model, weights } = fixtureBuild(SD15);
  assert.deepEqual(weights.unused(), []);
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ['sample', 'timestep', 'encoder_hidden_states']);
  assert.deepEqual(model.graph.outputs.map((v) => v.name), ['out_sample']);
  const errs = await compareWithReference('sd15-unet-tiny', model);
  t.diagnostic(`sd15-unet-tiny relL2 ${errs.map((e) => e.toExponential(2)).join(', ')}`);
  for (const e of errs) assert.ok(e < TOL, `relL2 ${e}`);
  const errs1 = await compareWithReference('sd15-unet-tiny', model, {}, false);
  for (const e of errs1) assert.ok(e < TOL, `relL2 ${e} with a [1] timestep`);
});

test('UNet SDXL: text_time embedding, linear projections, per-level layers and heads match diffusers', async (t) => {
  const { model, weights } = fixtureBuild(SDXL);
  assert.deepEqual(weights.unused(), []);
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ['sample', 'timestep', 'encoder_hidden_states', 'text_embeds', 'time_ids']);
  const errs = await compareWithReference('sdxl-unet-tiny', model);
  t.diagnostic(`sdxl-unet-tiny relL2 ${errs.map((e) => e.toExponential(2)).join(', ')}`);
  for (const e of errs) assert.ok(e < TOL, `relL2 ${e}`);
  assert.equal(model.metadataProps.get('diffusers.class_name'), 'UNet2DConditionModel');
  assert.equal(model.metadataProps.get('addition_embed_type'), 'text_time');
});

test('UNet: node names follow the module path, initializers are the checkpoint names', () => {
  for (const dir of [SD15, SDXL]) {
    const { model, weights } = fixtureBuild(dir);
    const names = new Set(model.graph.nodeList().map((n) => n.name));
    for (const n of names) assert.match(n, /^\/([A-Za-z0-9_.]+\/)*[A-Za-z]+(_\d+)?$/, n);
    for (const expected of ['/conv_in/Conv', '/down_blocks.0/resnets.1/conv1/Conv', '/down_blocks.1/resnets.0/conv_shortcut/Conv', '/mid_block/resnets.1/time_emb_proj/MatMul', '/up_blocks.0/upsamplers.0/Resize', '/time_embedding/linear_1/MatMul', '/conv_out/Conv']) {
      assert.ok(names.has(expected), `${dir}: no node ${expected}`);
    }
    assert.ok(names.has('/down_blocks.1/attentions.0/transformer_blocks.0/attn2/to_k/MatMul'));
    assert.ok(names.has('/down_blocks.1/attentions.0/transformer_blocks.0/ff/net.0/proj/MatMul'));
    const inits = new Set(model.graph.initializers.keys());
    for (const name of weights.checkpoint.names) assert.ok(inits.has(name), `initializer ${name}`);
  }
  const xl = fixtureBuild(SDXL).model;
  const names = new Set(xl.graph.nodeList().map((n) => n.name));
  assert.ok(names.has('/add_embedding/linear_1/MatMul'));
  assert.ok(names.has('/mid_block/attentions.0/transformer_blocks.1/attn1/to_q/MatMul'));
  assert.ok(names.has('/down_blocks.1/attentions.0/proj_in/MatMul'), 'SDXL projects with Linear');
});

test('UNet: sides that are not a multiple of the downsampling upsample to the skip size', async () => {
  const { model } = fixtureBuild(SD15);
  const s = await Session.create(model);
  try {
    for (const [h, w] of [[18, 18], [20, 12], [9, 17]] as const) {
      const sample: HostTensor = { dtype: 'float32', dims: [1, 4, h, w], data: new Float32Array(4 * h * w).map((_, i) => Math.sin(i)) };
      const ehs: HostTensor = { dtype: 'float32', dims: [1, 7, 32], data: new Float32Array(7 * 32).map((_, i) => Math.cos(i)) };
      const { outputs } = await s.run({ sample, timestep: { dtype: 'float32', dims: [1], data: Float32Array.from([500]) }, encoder_hidden_states: ehs });
      assert.deepEqual(outputs.out_sample!.dims, [1, 4, h, w]);
      assert.ok((outputs.out_sample!.data as Float32Array).every(Number.isFinite));
    }
  } finally {
    await s.release();
  }
});

test('UNet LCM: time_cond_proj_dim adds a timestep_cond input through time_embedding.cond_proj', async () => {
  const condDim = 8;
  const cond: HostTensor = { dtype: 'float32', dims: [2, condDim], data: new Float32Array(2 * condDim).map((_, i) => Math.sin(i + 1)) };
  // zero cond_proj: the reference outputs must come out unchanged
  const zero = await withScratch(SD15, {
    config: (c) => { c.time_cond_proj_dim = condDim; },
    tensors: (m) => m.set('time_embedding.cond_proj.weight', new InMemoryTensor('float32', [16, condDim], new Float32Array(16 * condDim))),
  }, async (dir) => {
    const { model, weights } = build(dir);
    assert.deepEqual(weights.unused(), []);
    assert.deepEqual(model.graph.inputs.map((v) => v.name), ['sample', 'timestep', 'encoder_hidden_states', 'timestep_cond']);
    assert.ok(model.graph.nodeList().some((n) => n.name === '/time_embedding/cond_proj/MatMul'));
    return compareWithReference('sd15-unet-tiny', model, { timestep_cond: cond });
  });
  for (const e of zero) assert.ok(e < TOL, `relL2 ${e}`);
  // a non-zero cond_proj changes the output
  const changed = await withScratch(SD15, {
    config: (c) => { c.time_cond_proj_dim = condDim; },
    tensors: (m) => m.set('time_embedding.cond_proj.weight', new InMemoryTensor('float32', [16, condDim], new Float32Array(16 * condDim).fill(0.5))),
  }, (dir) => compareWithReference('sd15-unet-tiny', build(dir).model, { timestep_cond: cond }));
  for (const e of changed) assert.ok(e > 1e-3, `cond_proj had no effect (${e})`);
  // and a missing cond_proj weight is named
  withScratch(SD15, { config: (c) => { c.time_cond_proj_dim = condDim; } }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'TENSOR_MISSING' && e.message.includes('time_embedding.cond_proj.weight'));
  });
});

test('UNet: unsupported config values fail naming the key', () => {
  const cases: [string, unknown][] = [
    ['resnet_time_scale_shift', 'scale_shift'],
    ['class_embed_type', 'timestep'],
    ['num_class_embeds', 10],
    ['addition_embed_type', 'text'],
    ['num_attention_heads', 8],
    ['time_embedding_type', 'fourier'],
    ['encoder_hid_dim_type', 'text_proj'],
    ['attention_type', 'gated'],
    ['dual_cross_attention', true],
    ['only_cross_attention', true],
    ['act_fn', 'tanh'],
    ['mid_block_type', 'UNetMidBlock2DSimpleCrossAttn'],
    ['down_block_types', ['CrossAttnDownBlock2D', 'AttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']],
    ['up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']],
    ['attention_head_dim', [4, 4, 4]],
    ['attention_head_dim', 5],
    ['transformer_layers_per_block', [1, [1, 2], 1, 1]],
    ['norm_num_groups', null],
    ['norm_num_groups', 12],
  ];
  for (const [key, value] of cases) {
    withScratch(SD15, { config: (c) => { c[key] = value; } }, (dir) => assertConfigError(() => build(dir), key === 'transformer_layers_per_block' ? 'reverse_transformer_layers_per_block' : key));
  }
  withScratch(SDXL, { config: (c) => { delete c.addition_time_embed_dim; } }, (dir) => assertConfigError(() => build(dir), 'addition_time_embed_dim'));
});

test('UNet: a missing or misshapen weight fails naming the tensor', () => {
  const missing = 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight';
  withScratch(SD15, { tensors: (m) => m.delete(missing) }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'TENSOR_MISSING' && e.message.includes(missing));
  });
  const bad = 'mid_block.attentions.0.proj_in.weight';
  withScratch(SD15, { tensors: (m) => m.set(bad, new InMemoryTensor('float32', [32, 32], new Float32Array(32 * 32))) }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'WEIGHT_SHAPE' && e.message.includes(bad));
  });
  // cross_attention_dim that disagrees with the weights
  withScratch(SD15, { config: (c) => { c.cross_attention_dim = 48; } }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'WEIGHT_SHAPE' && /attn2\.to_k\.weight/.test(e.message));
  });
});

test('UNet: pipeline and trained unet folders build and run', async () => {
  for (const dir of [fixture('pipelines', 'sd15-tiny', 'unet'), fixture('trained', 'shapes-sd', 'unet')]) {
    const { model, weights } = build(dir);
    assert.deepEqual(weights.unused(), [], dir);
    const config = ModelConfig.load(dir);
    const cross = config.int('cross_attention_dim');
    const s = await Session.create(model);
    try {
      const sample: HostTensor = { dtype: 'float32', dims: [2, 4, 16, 16], data: new Float32Array(2 * 4 * 256).map((_, i) => Math.sin(i * 0.37)) };
      const ehs: HostTensor = { dtype: 'float32', dims: [2, 77, cross], data: new Float32Array(2 * 77 * cross).map((_, i) => Math.cos(i * 0.11)) };
      const { outputs } = await s.run({ sample, timestep: { dtype: 'float32', dims: [2], data: Float32Array.from([700, 700]) }, encoder_hidden_states: ehs });
      assert.deepEqual(outputs.out_sample!.dims, [2, 4, 16, 16]);
      assert.ok((outputs.out_sample!.data as Float32Array).every(Number.isFinite));
    } finally {
      await s.release();
    }
  }
});
