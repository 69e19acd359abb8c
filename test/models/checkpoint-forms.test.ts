import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, readF32, relL2, tempDir } from '../helpers.js';
import { buildComponent } from '../../src/models/convert.js';
import { SafetensorsFile, writeSafetensors } from '../../src/tensors/safetensors.js';
import { castTensor } from '../../src/core/float.js';
import { Session, f32, i64, type HostTensor } from '../../src/runtime/session.js';
import type { Model } from '../../src/ir/graph.js';
import { saveModel } from '../../src/ir/model-file.js';
import { optimumStyle } from '../optimum-style.js';

const UNET = fixture('models/sd15-unet-tiny');
const ref = join(UNET, 'reference.safetensors');
const sample = readF32(ref, 'input.sample');
const ehs = readF32(ref, 'input.encoder_hidden_states');
const unetFeeds = { sample: f32(sample.shape, sample.data), timestep: f32([2], [501, 501]), encoder_hidden_states: f32(ehs.shape, ehs.data) };

async function runUnet(folder: string, variant?: string): Promise<Float32Array> {
  const s = await Session.create(buildComponent(folder, { variant }).model!);
  return (await s.run(unetFeeds)).outputs.out_sample!.data as Float32Array;
}

function copyConfig(): string {
  const dir = tempDir('ckforms-');
  cpSync(join(UNET, 'config.json'), join(dir, 'config.json'));
  return dir;
}

test('a sharded checkpoint converts to the same graph output as the single file', async () => {
  const plain = await runUnet(UNET);
  const dir = copyConfig();
  const st = SafetensorsFile.open(join(UNET, 'diffusion_pytorch_model.safetensors'));
  const names = st.names;
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < 3; i++) {
    const file = `diffusion_pytorch_model-0000${i + 1}-of-00003.safetensors`;
    const part = names.filter((_, j) => j % 3 === i);
    writeSafetensors(join(dir, file), new Map(part.map((n) => [n, st.tensor(n)])));
    for (const n of part) weightMap[n] = file;
  }
  writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  assert.deepEqual(await runUnet(dir), plain);
});

test('a variant file (diffusion_pytorch_model.fp16.safetensors) loads like the plain file', async () => {
  const plain = await runUnet(UNET);
  const dir = copyConfig();
  const st = SafetensorsFile.open(join(UNET, 'diffusion_pytorch_model.safetensors'));
  writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), new Map(st.names.map((n) => [n, castTensor(st.tensor(n), 'float16')])));
  assert.throws(() => buildComponent(dir), /pass a variant/);
  const out = await runUnet(dir, 'fp16');
  assert.ok(relL2(out, plain) < 5e-3, `fp16 weights: ${relL2(out, plain)}`);
  // the same weights as a plain float32 file give identical results
  const dir32 = copyConfig();
  writeSafetensors(join(dir32, 'diffusion_pytorch_model.safetensors'), new Map(st.names.map((n) => [n, castTensor(castTensor(st.tensor(n), 'float16'), 'float32')])));
  assert.deepEqual(await runUnet(dir32), out);
});

async function exportAndRun(model: Model, feeds: Record<string, HostTensor>, output: string): Promise<Float32Array> {
  const dir = tempDir('optimum-');
  try {
    saveModel(model, join(dir, 'model.onnx'));
    const s = await Session.create(join(dir, 'model.onnx'));
    return (await s.run(feeds)).outputs[output]!.data as Float32Array;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('an Optimum-style unet (int64 timestep) runs with our feeds and gives the plain outputs', async () => {
  // int64 timesteps truncate fractional values, as Optimum's pipelines do; 501 is whole
  const plain = await runUnet(UNET);
  const m = optimumStyle(buildComponent(UNET).model!, { timestep: { dtype: 'int64' } });
  assert.deepEqual(await exportAndRun(m, unetFeeds, 'out_sample'), plain);
});

test('an Optimum-style CLIP (int32 ids) and Flux transformer (img_ids/txt_ids with a batch axis) match', async () => {
  const clipDir = fixture('models/clip-text-tiny');
  const ids = i64([2, 8], Array.from({ length: 16 }, (_, i) => (i * 37) % 99 + 1));
  const plainClip = (await (await Session.create(buildComponent(clipDir).model!)).run({ input_ids: ids })).outputs.last_hidden_state!.data;
  const clip = optimumStyle(buildComponent(clipDir).model!, { input_ids: { dtype: 'int32' } });
  assert.deepEqual(await exportAndRun(clip, { input_ids: ids }, 'last_hidden_state'), plainClip);

  const fluxDir = fixture('models/flux-transformer-tiny');
  const fref = join(fluxDir, 'reference.safetensors');
  const st = SafetensorsFile.open(fref);
  const feeds: Record<string, HostTensor> = {};
  for (const n of st.names.filter((k) => k.startsWith('input.'))) {
    const t = readF32(fref, n);
    const key = n.slice('input.'.length);
    // our graphs take ids without the batch axis
    feeds[key] = key.endsWith('_ids') ? f32(t.shape.slice(1), t.data) : f32(t.shape, t.data);
  }
  feeds.timestep = f32([1], [0.5]);
  const plain = (await (await Session.create(buildComponent(fluxDir).model!)).run(feeds)).outputs.out_hidden_states!.data;
  const flux = optimumStyle(buildComponent(fluxDir).model!, { img_ids: { dtype: 'float32', batchAxis: true }, txt_ids: { dtype: 'float32', batchAxis: true } });
  assert.deepEqual(await exportAndRun(flux, feeds, 'out_hidden_states'), plain);
});
