import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, checkpointCounts, fixture, tempDir } from '../helpers.js';
import { runCli } from './run-cli.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { tensor } from '../../src/core/tensor.js';
import { saveModel } from '../../src/ir/model-file.js';

test('inspect --json: sd15-unet-tiny counts the tensors and values its safetensors header lists', async () => {
  const want = checkpointCounts(fixture('models/sd15-unet-tiny'));
  assert.ok(want.tensors > 600 && want.count > 800_000, 'the fixture is the tiny SD 1.x UNet');
  const r = await runCli(['inspect', fixture('models/sd15-unet-tiny'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.parameters.tensors, want.tensors);
  assert.equal(j.parameters.count, want.count);
  assert.deepEqual(Object.keys(j.parameters.byDtype), ['float32']);
  assert.deepEqual(Object.keys(want.byDtype), ['F32']);
  for (const k of ['inputs', 'outputs', 'ops', 'externalData']) assert.ok(k in j, k);
});

test('inspect --json: the flux-tiny transformer counts the BF16 tensors and values of its header', async () => {
  const want = checkpointCounts(fixture('pipelines/flux-tiny/transformer'));
  assert.deepEqual(Object.keys(want.byDtype), ['BF16']);
  const r = await runCli(['inspect', fixture('pipelines/flux-tiny/transformer'), '--json']);
  const j = JSON.parse(r.stdout);
  assert.equal(j.parameters.byDtype.bfloat16.tensors, want.tensors);
  assert.equal(j.parameters.byDtype.bfloat16.count, want.count);
  const p = JSON.parse((await runCli(['inspect', fixture('pipelines/flux-tiny'), '--json'])).stdout);
  assert.equal(p.kind, 'pipeline');
  assert.equal(p.components.transformer.parameters.count, want.count);
});

test('inspect works on every fixture file and folder', async () => {
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? [p, ...walk(p)] : n.endsWith('.safetensors') ? [p] : [];
  });
  for (const p of walk(FIXTURES)) {
    const isModelDir = statSync(p).isDirectory() && readdirSync(p).some((n) => n === 'config.json' || n === 'model_index.json');
    if (statSync(p).isDirectory() && !isModelDir) continue;
    const r = await runCli(['inspect', p, '--json']);
    assert.equal(r.code, 0, `${p}: ${r.stderr}`);
    assert.ok(JSON.parse(r.stdout).parameters.tensors > 0, p);
  }
});

test('inspect on a saved ONNX model: io, ops with domains and subgraphs, external data', async () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 256]);
  const y = b.scope('proj', () => b.matmul(x, b.weight('weight', tensor.f32([256, 256]))));
  const z = b.op('FastGelu', [y], {}, { domain: 'com.microsoft' });
  b.output(z, 'out', 'float32', ['batch', 256]);
  const dir = tempDir('insp-');
  saveModel(b.model({ '': 17, 'com.microsoft': 1 }), join(dir, 'model.onnx'));
  const r = await runCli(['inspect', join(dir, 'model.onnx'), '--json']);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.inputs, [{ name: 'x', dtype: 'float32', shape: ['batch', 256] }]);
  assert.deepEqual(j.outputs, [{ name: 'out', dtype: 'float32', shape: ['batch', 256] }]);
  assert.deepEqual(j.ops, { MatMul: 1, 'com.microsoft.FastGelu': 1 });
  assert.equal(j.parameters.count, 65536);
  assert.equal(j.externalData[0].file, 'model.onnx_data');
  const human = await runCli(['inspect', dir]);
  assert.match(human.stdout, /MatMul×1/);
});

test('the CLI prints typed errors in one line, without a stack, and exits non-zero', async () => {
  const dir = tempDir('insp-bad-');
  writeFileSync(join(dir, 'bad.safetensors'), Buffer.from([255, 255, 255, 255, 0, 0, 0, 0, 1, 2]));
  const r = await runCli(['inspect', join(dir, 'bad.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.safetensors.*SAFETENSORS_HEADER_SIZE/);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  assert.ok(r.stderr.trim().split('\n').length <= 2);
});
