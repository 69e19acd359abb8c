/**
 * serde on real exporter output: every graph of test/fixtures/torch-export/ (PyTorch's
 * torch.onnx.export, weights inside model.onnx) loads with loadModel, keeps its names, and once
 * saved with saveModel (weights moved to model.onnx_data) gives onnxruntime outputs identical to
 * the original's, bit for bit.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dim, Model } from '../../src/ir/graph.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { fixture } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'smash-torch-export-serde-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Optimum's dynamic-axis names -> small sizes that fit together (latent sizes divisible by 8) */
function size(d: Dim): number {
  if (typeof d === 'number') return d;
  if (d === 'batch_size' || d === 'step') return 1;
  if (d === 'sequence_length') return 7;
  if (d === 'packed_height_width') return 6;
  if (d && /height|width/.test(d)) return 8;
  throw new Error(`no size for dim ${String(d)}`);
}

/** Deterministic feeds for a graph's inputs: floats in [-1, 1), ids in {0, 1, 2}. */
function feeds(m: Model): Record<string, HostTensor> {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const out: Record<string, HostTensor> = {};
  for (const v of m.graph.inputs) {
    const dims = (v.shape ?? []).map(size);
    const n = dims.reduce((a, b) => a * b, 1);
    if (v.dtype === 'int64') out[v.name] = { dtype: 'int64', dims, data: BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 3))) };
    else if (v.dtype === 'float32') out[v.name] = { dtype: 'float32', dims, data: Float32Array.from({ length: n }, () => next() * 2 - 1) };
    else throw new Error(`${v.name}: dtype ${v.dtype}`);
  }
  return out;
}

const bytes = (t: HostTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

const components: [string, string, string[], string[]][] = [
  ['sd15-tiny', 'unet', ['sample:float32:4', 'timestep:float32:0', 'encoder_hidden_states:float32:3'], ['out_sample']],
  ['sd15-tiny', 'text_encoder', ['input_ids:int64:2'], ['last_hidden_state', 'pooler_output']],
  ['sd15-tiny', 'vae_decoder', ['latent_sample:float32:4'], ['sample']],
  ['sd15-tiny', 'vae_encoder', ['sample:float32:4'], ['latent_parameters']],
  ['flux-tiny', 'transformer', ['hidden_states:float32:3', 'encoder_hidden_states:float32:3', 'pooled_projections:float32:2', 'timestep:float32:1', 'img_ids:int64:2', 'txt_ids:int64:2', 'guidance:float32:1'], ['out_hidden_states']],
  ['flux-tiny', 'text_encoder', ['input_ids:int64:2'], ['last_hidden_state', 'pooler_output']],
  ['flux-tiny', 'text_encoder_2', ['input_ids:int64:2'], ['last_hidden_state']],
  ['flux-tiny', 'vae_decoder', ['latent_sample:float32:4'], ['sample']],
  ['flux-tiny', 'vae_encoder', ['sample:float32:4'], ['latent_parameters']],
];

for (const [pipeline, component, inputs, outputs] of components) {
  test(`torch-export ${pipeline}/${component}: loadModel, saveModel, reload: same names, identical onnxruntime outputs`, async () => {
    const src = fixture('torch-export', pipeline, component, 'model.onnx');
    const m = loadModel(src);
    assert.deepEqual(m.graph.inputs.map((v) => `${v.name}:${v.dtype}:${v.shape?.length}`), inputs);
    assert.deepEqual(m.graph.outputs.map((v) => v.name), outputs);
    const names = m.graph.nodeList().map((n) => n.name);
    assert.ok(names.some((n) => n.startsWith('/') && n.split('/').length > 3), 'PyTorch scope names such as /a/b/Op');
    const x = feeds(m);

    const out = join(tmp, pipeline, component, 'model.onnx');
    saveModel(m, out);
    const back = loadModel(out);
    assert.deepEqual(back.graph.nodeList().map((n) => n.name), names);
    assert.deepEqual([...back.graph.initializers.keys()].sort(), [...m.graph.initializers.keys()].sort());

    const opts = { threads: 1, optimizationLevel: 'disabled' as const };
    const [a, b] = await Promise.all([Session.create(src, opts), Session.create(out, opts)]);
    const [ra, rb] = await Promise.all([a.run(x), b.run(x)]);
    assert.deepEqual(Object.keys(ra.outputs), outputs);
    for (const k of outputs) {
      assert.deepEqual(rb.outputs[k]!.dims, ra.outputs[k]!.dims, k);
      assert.ok(bytes(ra.outputs[k]!).equals(bytes(rb.outputs[k]!)), `${k} differs after the round trip`);
      assert.ok(Array.from(ra.outputs[k]!.data as Float32Array).every(Number.isFinite), `${k} finite`);
    }
  });
}
