import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuseQkv } from '../../src/algorithms/factorizers/qkv.js';
import { FUSED_FROM_KEY as FUSED_FROM, modulePaths, selectNodes } from '../../src/ir/modules.js';
import { fixture, relL2 } from '../helpers.js';
import { loadModel } from '../../src/ir/model-file.js';
import { clipEncoder, fluxDenoiser, opCounts, optimumUnetDenoiser, runOnce, sd3Denoiser, unetDenoiser, type FixtureDenoiser } from './denoisers.js';

/** Fuses q/k/v in a fixture graph; returns the groups fused, MatMuls removed and the output error. */
async function check(d: FixtureDenoiser) {
  const base = d.build();
  const ref = await runOnce(base, d);
  const m = d.build();
  const before = opCounts(m);
  const groups = fuseQkv(m);
  const after = opCounts(m);
  const err = relL2(await runOnce(m, d), ref);
  return { groups, matmulsRemoved: before.get('MatMul')! - after.get('MatMul')!, splits: (after.get('Split') ?? 0) - (before.get('Split') ?? 0), err, model: m };
}

test('qkv on Flux: double blocks fuse q/k/v and the context projections, single blocks q/k/v; output unchanged', async () => {
  const d = fluxDenoiser();
  const r = await check(d);
  const cfg = { double: 0, single: 0 };
  for (const n of r.model.graph.nodes()) {
    if (n.opType !== 'Split' || !n.metadata.has(FUSED_FROM)) continue;
    if (n.name.startsWith('/transformer_blocks.')) cfg.double++;
    else if (n.name.startsWith('/single_transformer_blocks.')) cfg.single++;
  }
  // 3 projections -> 1 per group: 2 MatMuls saved per group
  assert.equal(r.matmulsRemoved, 2 * r.groups);
  assert.equal(r.splits, r.groups);
  assert.ok(cfg.double >= 2 && cfg.double % 2 === 0, `double-block groups: ${cfg.double}`);
  assert.ok(cfg.single >= 1, `single-block groups: ${cfg.single}`);
  assert.equal(r.groups, cfg.double + cfg.single);
  assert.ok(r.err < 1e-4, `relL2 ${r.err}`);
  const split = [...r.model.graph.nodes()].find((n) => n.opType === 'Split' && n.name === '/transformer_blocks.0/attn/to_qkv/Split')!;
  assert.deepEqual(JSON.parse(split.metadata.get(FUSED_FROM)!), ['transformer_blocks.0.attn.to_q', 'transformer_blocks.0.attn.to_k', 'transformer_blocks.0.attn.to_v']);
  assert.ok(r.model.graph.initializers.has('transformer_blocks.0.attn.to_qkv.weight'));
  assert.ok(!r.model.graph.initializers.has('transformer_blocks.0.attn.to_q.weight'), 'the separate weights are gone (not held twice)');
});

test('qkv on the UNet: self-attention fuses q/k/v, cross-attention only k/v (q reads another input)', async () => {
  const r = await check(unetDenoiser());
  const fused = [...r.model.graph.nodes()].filter((n) => n.opType === 'Split' && n.metadata.has(FUSED_FROM)).map((n) => JSON.parse(n.metadata.get(FUSED_FROM)!) as string[]);
  const self = fused.filter((f) => f.length === 3);
  const cross = fused.filter((f) => f.length === 2);
  assert.ok(self.length > 0 && self.every((f) => f[0]!.endsWith('attn1.to_q')));
  assert.equal(cross.length, self.length, 'one cross-attention k/v pair per transformer block');
  assert.ok(cross.every((f) => f[0]!.endsWith('attn2.to_k') && f[1]!.endsWith('attn2.to_v')));
  assert.ok(r.err < 1e-4, `relL2 ${r.err}`);
});

test('qkv on SD3 and CLIP: fused and unchanged outputs', async () => {
  for (const d of [sd3Denoiser(), clipEncoder()]) {
    const r = await check(d);
    assert.ok(r.groups > 0, `${d.name}: nothing fused`);
    assert.ok(r.err < 1e-4, `${d.name}: relL2 ${r.err}`);
  }
});

test('qkv leaves projections that do not share an input alone', async () => {
  const { Node, Value } = await import('../../src/ir/graph.js');
  const m = unetDenoiser().build();
  const nodes = [...m.graph.nodes()];
  const toK = nodes.find((n) => n.name.endsWith('/attn2/to_k/MatMul'))!;
  const toV = nodes.find((n) => n.name === toK.name.replace('to_k', 'to_v'))!;
  // give this cross-attention's k its own input value (an Identity copy): k and v no longer share one
  const copy = new Value('k_input_copy', 'float32');
  const id = new Node('Identity', '/test/Identity');
  id.inputs.push(toK.inputs[0]!);
  id.outputs.push(copy);
  m.graph.insert(id, toK);
  toK.setInput(0, copy);
  const fusedBefore = fuseQkv(unetDenoiser().build());
  assert.equal(fuseQkv(m), fusedBefore - 1, 'exactly that k/v pair is not fused');
  assert.equal(toK.graph, m.graph, 'to_k stays a separate MatMul');
  assert.equal(toV.graph, m.graph, 'to_v stays a separate MatMul');
});

test('globs written for to_q reach the fused to_qkv (it keeps the paths it came from)', () => {
  const m = fluxDenoiser().build();
  fuseQkv(m);
  const fused = [...m.graph.nodes()].find((n) => n.name === '/transformer_blocks.0/attn/to_qkv/MatMul')!;
  assert.deepEqual(modulePaths(fused), ['transformer_blocks.0.attn.to_qkv', 'transformer_blocks.0.attn.to_q', 'transformer_blocks.0.attn.to_k', 'transformer_blocks.0.attn.to_v']);
  assert.ok(selectNodes(m.graph, { include: ['transformer_blocks.0.attn.to_q'] }).includes(fused));
  assert.ok(!selectNodes(m.graph, { exclude: ['*.to_k'] }).includes(fused));
});

test('qkv on imported graphs (Optimum\'s and torch.onnx\'s exports): the same groups fused for both exporters; output unchanged', async () => {
  // MatMuls removed and Splits added per graph, the same for both exporters
  const expected: [string, string, number, number][] = [['flux-tiny', 'transformer', 14, 7], ['flux-tiny', 'text_encoder', 4, 2], ['flux-tiny', 'text_encoder_2', 4, 2], ['sd15-tiny', 'unet', 48, 32], ['sd15-tiny', 'text_encoder', 4, 2]];
  for (const [pipeline, component, removed, splits] of expected) {
    for (const exporter of [['optimum', 'current'], ['torch-export']]) {
      const m = loadModel(fixture(...exporter, pipeline, component, 'model.onnx'));
      const before = opCounts(m);
      fuseQkv(m);
      const after = opCounts(m);
      const at = `${exporter.join('/')} ${pipeline} ${component}`;
      assert.equal(before.get('MatMul')! - after.get('MatMul')!, removed, at);
      assert.equal((after.get('Split') ?? 0) - (before.get('Split') ?? 0), splits, at);
    }
  }
  const r = await check(optimumUnetDenoiser());
  assert.ok(r.err < 1e-4, `relL2 ${r.err}`);
});
