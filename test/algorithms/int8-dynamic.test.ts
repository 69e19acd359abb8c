import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quantizeMatMulsDynamic } from '../../src/algorithms/quantizers/int8-dynamic.js';
import { dequantizePerChannelInt8, quantizePerChannelInt8 } from '../../src/algorithms/quantizers/int8.js';
import { targetNodes } from '../../src/algorithms/quantizers/targets.js';
import { modulePath } from '../../src/ir/modules.js';
import { tensor } from '../../src/core/tensor.js';
import { relL2 } from '../helpers.js';
import { clipEncoder, fluxDenoiser, opCounts, optimumUnetDenoiser, runOnce, unetDenoiser, type FixtureDenoiser } from './denoisers.js';

async function quantize(d: FixtureDenoiser) {
  const ref = await runOnce(d.build(), d);
  const m = d.build();
  const before = opCounts(m);
  const t = { components: [d.component.role] };
  const excludedBefore = [...m.graph.nodes()].filter((n) => n.opType === 'MatMul' && !targetNodes(m.graph, d.component, t).includes(n)).map((n) => n.name);
  const count = quantizeMatMulsDynamic(m, targetNodes(m.graph, d.component, t));
  const after = opCounts(m);
  return { m, count, before, after, excludedBefore, err: relL2(await runOnce(m, d), ref) };
}

test('int8 per-column weights: every dequantized weight within half a step of the float one', () => {
  const w = tensor.f32([3, 2], [0.5, -2, 0.25, 1, -0.1, 0]);
  const q = quantizePerChannelInt8(w, 1);
  assert.deepEqual([...new Float32Array(q.scale.bytes().slice().buffer)], [Math.fround(0.5 / 127), Math.fround(2 / 127)]);
  const back = dequantizePerChannelInt8(q, 1);
  const x = new Float32Array(w.bytes().slice().buffer);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(back[i]! - x[i]!) <= (i % 2 ? 2 : 0.5) / 127 / 2 + 1e-7, `element ${i}`);
  // along axis 0 (a Conv's output channels): rows [0.5, -2] and [0.25, 1] and [-0.1, 0]
  const rows = quantizePerChannelInt8(w, 0);
  assert.deepEqual([...new Float32Array(rows.scale.bytes().slice().buffer)], [Math.fround(2 / 127), Math.fround(1 / 127), Math.fround(0.1 / 127)]);
  const backRows = dequantizePerChannelInt8(rows, 0);
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(backRows[i]! - x[i]!) <= [2, 1, 0.1][i >> 1]! / 127 / 2 + 1e-7, `row element ${i}`);
});

test('int8Dynamic on Flux: MatMuls become DynamicQuantizeMatMul with biases folded, excluded modules stay float', async () => {
  const r = await quantize(fluxDenoiser());
  assert.ok(r.count > 0);
  assert.equal(r.after.get('DynamicQuantizeMatMul'), r.count);
  assert.equal(r.before.get('MatMul')! - (r.after.get('MatMul') ?? 0), r.count);
  assert.ok((r.after.get('Add') ?? 0) < r.before.get('Add')!, 'bias Adds folded');
  // the excluded modules (x_embedder, context_embedder, time_text_embed*, *norm*, proj_out) keep float MatMuls
  const still = new Set([...r.m.graph.nodes()].filter((n) => n.opType === 'MatMul').map((n) => n.name));
  for (const name of r.excludedBefore) assert.ok(still.has(name), `${name} must stay float`);
  const paths = r.excludedBefore.map((n) => n.split('/').slice(1, -1).join('.'));
  for (const p of ['x_embedder', 'context_embedder', 'proj_out']) assert.ok(paths.includes(p), `${p} is excluded by default`);
  assert.ok(paths.some((p) => p.startsWith('time_text_embed')));
  assert.ok(paths.some((p) => /norm/.test(p)));
  for (const n of r.m.graph.nodes()) if (n.opType === 'DynamicQuantizeMatMul') assert.ok(!/norm|embed|^proj_out$/.test(modulePath(n)), modulePath(n));
  assert.ok(r.err < 5e-2, `relL2 ${r.err}`);
  console.log(`int8Dynamic flux-transformer-tiny: ${r.count} MatMuls, relL2 ${r.err.toExponential(2)}`);
});

test('int8Dynamic on the UNet and CLIP: close to float', async () => {
  for (const d of [unetDenoiser(), clipEncoder()]) {
    const r = await quantize(d);
    assert.ok(r.count > 0, d.name);
    assert.ok(r.err < 5e-2, `${d.name}: relL2 ${r.err}`);
    console.log(`int8Dynamic ${d.name}: ${r.count} MatMuls, relL2 ${r.err.toExponential(2)}`);
  }
});

test('int8Dynamic: only the denoiser by default, other components when chosen; include and exclude globs choose modules', () => {
  const d = fluxDenoiser();
  const m = d.build();
  const asVae = { name: 'vae_decoder', role: 'vae_decoder', architecture: 'AutoencoderKL' } as const;
  const asText = { name: 'text_encoder', role: 'text_encoder', architecture: 'CLIPTextModel' } as const;
  assert.equal(targetNodes(m.graph, asVae, {}).length, 0);
  assert.equal(targetNodes(m.graph, asText, {}).length, 0);
  assert.ok(targetNodes(m.graph, asVae, { components: ['vae_decoder'] }).length > 0);
  const only = targetNodes(m.graph, d.component, { include: ['transformer_blocks.0.attn.*'] });
  assert.ok(only.length > 0 && only.every((n) => modulePath(n).startsWith('transformer_blocks.0.attn.')));
  const n = quantizeMatMulsDynamic(m, targetNodes(m.graph, d.component, { include: ['transformer_blocks.0.attn.*'], exclude: ['*to_out*'] }));
  const q = [...m.graph.nodes()].filter((x) => x.opType === 'DynamicQuantizeMatMul').map(modulePath);
  assert.equal(q.length, n);
  assert.ok(q.length > 0 && q.every((p) => p.startsWith('transformer_blocks.0.attn.') && !p.includes('to_out')), q.join());
});

test('int8Dynamic conv: convInteger turns the UNet convolutions (not conv_in, conv_out) into ConvInteger, close to float', async () => {
  const { quantizeConvsDynamic } = await import('../../src/algorithms/quantizers/conv-integer.js');
  const d = unetDenoiser();
  const ref = await runOnce(d.build(), d);
  const m = d.build();
  const convs = opCounts(m).get('Conv')!;
  const n = quantizeConvsDynamic(m, targetNodes(m.graph, d.component, {}));
  const after = opCounts(m);
  assert.equal(after.get('ConvInteger'), n);
  assert.equal(after.get('Conv'), convs - n);
  const kept = [...m.graph.nodes()].filter((x) => x.opType === 'Conv').map(modulePath);
  assert.ok(kept.includes('conv_in') && kept.includes('conv_out'), kept.join());
  const err = relL2(await runOnce(m, d), ref);
  // activations quantized per tensor at every convolution: 5.3e-2 on these random weights (the MatMul-only default: 3.4e-2)
  assert.ok(err < 1e-1, `relL2 ${err}`);
});

test('int8Dynamic on an Optimum export: the Gemm linears torch.onnx writes (time_emb_proj) are quantized as our MatMuls are, time_embedding\'s stay float', async () => {
  const d = optimumUnetDenoiser();
  const { m, count, before, after, err } = await quantize(d);
  assert.equal(before.get('Gemm'), 24);
  assert.equal(after.get('Gemm'), 2);
  assert.deepEqual([...m.graph.nodes()].filter((n) => n.opType === 'Gemm').map(modulePath).sort(), ['time_embedding.linear_1', 'time_embedding.linear_2']);
  assert.equal(count, before.get('MatMul')! - after.get('MatMul')! + 22);
  assert.equal(after.get('DynamicQuantizeMatMul'), count);
  console.log(`int8Dynamic optimum sd15-tiny unet: ${count} layers (22 Gemm), relL2 ${err.toExponential(2)}`);
  assert.ok(err < 5e-2, `relL2 ${err}`); // 3.2e-2 measured
});
