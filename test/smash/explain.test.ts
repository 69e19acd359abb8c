import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainSteps, formatExplanation } from '../../src/smash/explain.js';
import { SmashConfig } from '../../src/smash/config.js';
import { fluxDenoiser, opCounts } from '../algorithms/denoisers.js';

test('explain lists the order, the resolved hyperparameters and the modules each algorithm touches, changing nothing', () => {
  const m = fluxDenoiser().build();
  const ops = opCounts(m);
  const steps = explainSteps(new SmashConfig({ ortCompile: {}, int8_dynamic: { exclude: ['*norm*', 'proj_out'] }, qkv: {} }), { className: 'FluxPipeline', denoiser: 'flux', components: ['transformer'] }, new Map([['transformer', m]]));
  assert.deepEqual(opCounts(m), ops, 'the graph is unchanged');
  assert.deepEqual(steps.map((s) => s.name), ['qkv', 'int8Dynamic', 'ortCompile']);
  assert.deepEqual(steps[1]!.params, { conv: 'none', components: ['denoiser'], exclude: ['*norm*', 'proj_out'] });
  const q = steps[1]!.touches.transformer!;
  assert.ok(q.includes('transformer_blocks.0.attn.to_q') && q.includes('x_embedder'), 'the user exclude replaces the defaults: x_embedder is quantized');
  assert.ok(!q.includes('proj_out') && !q.some((p) => p.includes('norm')));
  assert.ok(steps[0]!.touches.transformer!.includes('single_transformer_blocks.0.attn.to_v'));
  assert.ok(steps[2]!.touches.transformer!.some((p) => p.endsWith('.attn')), 'attention modules fused');
  const text = formatExplanation(steps);
  assert.match(text, /^1\. qkv \(factorizer\)/);
  assert.match(text, /2\. int8Dynamic \(quantizer\)[^\n]*\n   hyperparameters: \{"conv":"none","components":\["denoiser"\],"exclude":\["\*norm\*","proj_out"\]\}\n   transformer: \d+ modules: /);
});
