import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuse } from '../../src/algorithms/compilers/ort-compile.js';
import { modulatedLayerNormFusion } from '../../src/algorithms/compilers/fusions/modulated-layer-norm.js';
import { rotaryEmbeddingFusion } from '../../src/algorithms/compilers/fusions/rotary-embedding.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { allNodes, type Model, type Value } from '../../src/ir/graph.js';
import { fbCacheTransform } from '../../src/algorithms/cachers/fbcache.js';
import { NoMatch, rulesPass, tryRule } from '../../src/ir/rewrite.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { Ctx } from '../../src/models/blocks/context.js';
import { applyRotary, rotaryEmbedding } from '../../src/models/blocks/rotary.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { ALGORITHMS } from '../../src/algorithms/registry.js';
import type { Algorithm } from '../../src/algorithms/algorithm.js';
import { folderTarget } from '../../src/smash/target.js';
import { fixture, relL2 } from '../helpers.js';
import { fluxDenoiser, opCounts, runOnce, sd3Denoiser } from './denoisers.js';

const noWeights = undefined as unknown as ConstructorParameters<typeof Ctx>[1];
const rand = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 12.9898 + seed * 78.233) * 0.8);

async function run(m: Model, feeds: Record<string, HostTensor>): Promise<Float32Array> {
  const s = await Session.create(m, { threads: 1 });
  try {
    return (await s.run(feeds, ['y'])).outputs.y!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** Applies one rule (as fuse() does) and returns how often it fired. */
function applyRule(m: Model, rule: Parameters<typeof tryRule>[0]): number {
  const p = rulesPass('test', [rule]);
  p.run(m);
  deadCodeElimination.run(m);
  m.opsetImports.set('com.microsoft', 1);
  return p.fired.get(rule.name) ?? 0;
}

const anchors = (m: Model, op: string) => m.graph.nodeList().filter((n) => n.opType === op);

/**
 * q and k [B, S, H, D] rotated as Flux does: angles from ids [S, 3] over axes (16, 56, 56), so
 * D = 128 and the pair-repeated index vector is longer than 64 (as at Flux's real sizes).
 * `angles: 'input'` feeds the angles from outside instead, where nothing proves the pairs equal.
 */
function rotaryGraph(angles: 'ids' | 'input' = 'ids') {
  const S = 6;
  const H = 2;
  const D = 128;
  const b = new GraphBuilder();
  const c = new Ctx(b, noWeights);
  const q = b.input('q', 'float32', [1, S, H, D]);
  const k = b.input('k', 'float32', [1, S, H, D]);
  let rot;
  if (angles === 'ids') rot = rotaryEmbedding(c, 'pos_embed', b.input('ids', 'float32', [S, 3]), [16, 56, 56]);
  else {
    const a = b.input('angles', 'float32', [S, 1, D]);
    rot = { cos: b.op('Cos', [a]), sin: b.op('Sin', [a]) };
  }
  b.output(b.add(applyRotary(c, q, rot), b.mul(applyRotary(c, k, rot), b.constF32(2))), 'y');
  const ids = new Float32Array(S * 3);
  for (let s = 0; s < S; s++) ids.set([0, s % 3, Math.floor(s / 3) * 5], s * 3);
  const feeds: Record<string, HostTensor> = {
    q: { dtype: 'float32', dims: [1, S, H, D], data: rand(S * H * D, 1) },
    k: { dtype: 'float32', dims: [1, S, H, D], data: rand(S * H * D, 2) },
    ...(angles === 'ids' ? { ids: { dtype: 'float32', dims: [S, 3], data: ids } } : { angles: { dtype: 'float32', dims: [S, 1, D], data: rand(S * D, 3) } }),
  };
  return { model: b.model({ '': 17 }), feeds };
}

test('rotary fusion: Flux\'s interleaved rotation of q and k becomes two RotaryEmbedding nodes sharing one cos/sin cache; output within 1e-5', async () => {
  const { model, feeds } = rotaryGraph();
  const ref = await run(model, feeds);
  const before = opCounts(model);
  assert.equal(applyRule(model, rotaryEmbeddingFusion), 2);
  const after = opCounts(model);
  assert.equal(after.get('RotaryEmbedding'), 2);
  for (const op of ['Neg', 'Split', 'Concat']) assert.equal(after.get(op) ?? 0, 0, `${op}: ${before.get(op)} -> ${after.get(op)}`);
  // x·cos + r·sin per rotary: 2 Muls and 1 Add each gone (the output's own Mul and Add stay)
  assert.equal(after.get('Mul'), before.get('Mul')! - 4);
  assert.equal(after.get('Add'), before.get('Add')! - 2);
  assert.equal(after.get('Gather'), (before.get('Gather') ?? 0) + 2, 'one even-channel cache for cos and one for sin, not one per rotary');
  const rope = anchors(model, 'RotaryEmbedding')[0]!;
  assert.equal(rope.domain, 'com.microsoft');
  assert.equal(rope.attrInt('interleaved', 0), 1);
  assert.match(rope.name, /^\/RotaryEmbedding/);
  const err = relL2(await run(model, feeds), ref);
  assert.ok(err < 1e-5, `relL2 ${err}`);
});

test('rotary fusion does not fire where cos/sin are not provably pair-repeated, or where the rotation is another', () => {
  const { model } = rotaryGraph('input');
  for (const add of anchors(model, 'Add').filter((n) => n.inputs.every((v) => v?.producer?.opType === 'Mul'))) {
    const r = tryRule(rotaryEmbeddingFusion, add);
    assert.ok(r instanceof NoMatch && /pair/.test(r.reason), String((r as NoMatch).reason));
  }
  // the half-split rotation (x0, x1 halves, not pairs) is not Flux's layout
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [1, 4, 2, 8]);
  const cos = b.op('Cos', [b.constF32(Array(8).fill(0.5), [4, 1, 2])]);
  const halves = b.op('Reshape', [x, b.constI64([0, 0, 0, 2, -1])]);
  const [x0, x1] = b.opN('Split', [halves, b.constI64([1, 1])], { axis: 3 }, { outputs: 2 }) as [Value, Value];
  const r = b.op('Reshape', [b.concat([b.op('Neg', [x1]), x0], 3), b.constI64([0, 0, 0, -1])]);
  b.output(b.add(b.mul(x, cos), b.mul(r, cos)), 'y');
  const m = tryRule(rotaryEmbeddingFusion, anchors(b.model({ '': 17 }), 'Add')[0]!);
  assert.ok(m instanceof NoMatch, 'half-split rotation must not fuse');
});

/** x [B, S, D] through AdaLayerNormZero's modulation: LN(x)·(1 + scale) + shift, scale and shift chunks of emb[:, None]. */
function modulatedGraph(scaleFrom: 'emb' | 'per-token') {
  const B = 2;
  const S = 5;
  const D = 8;
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [B, S, D]);
  let scale: Value;
  let shift: Value;
  if (scaleFrom === 'emb') {
    const emb = b.input('emb', 'float32', [B, 2 * D]);
    // a MatMul leaves no inferred shape downstream of Split: the rule proves the ranks itself
    const params = b.unsqueeze(b.matmul(emb, b.constF32(Array.from({ length: 4 * D * D }, (_, i) => Math.cos(i)), [2 * D, 2 * D])), [1]);
    [shift, scale] = b.opN('Split', [params, b.constI64([D, D])], { axis: -1 }, { outputs: 2 }) as [Value, Value];
  } else {
    scale = b.input('scale', 'float32', [B, S, D]);
    shift = b.input('shift', 'float32', [B, 1, D]);
  }
  const normed = b.op('LayerNormalization', [x, b.constF32(Array(D).fill(1)), b.constF32(Array(D).fill(0))], { axis: -1, epsilon: 1e-6 });
  b.output(b.add(b.mul(normed, b.add(scale, b.constF32(1))), shift), 'y');
  const feeds: Record<string, HostTensor> = { x: { dtype: 'float32', dims: [B, S, D], data: rand(B * S * D, 4) } };
  if (scaleFrom === 'emb') feeds.emb = { dtype: 'float32', dims: [B, 2 * D], data: rand(B * 2 * D, 5) };
  return { model: b.model({ '': 17 }), feeds };
}

test('modulated LayerNorm: LN(x)·(1 + scale) + shift with per-sample [B, 1, D] chunks becomes one LayerNormalization (batch 2, within 1e-5)', async () => {
  const { model, feeds } = modulatedGraph('emb');
  const ref = await run(model, feeds);
  const before = opCounts(model);
  assert.equal(applyRule(model, modulatedLayerNormFusion), 1);
  const after = opCounts(model);
  assert.equal(after.get('LayerNormalization'), 1);
  assert.equal(after.get('Mul') ?? 0, before.get('Mul')! - 1);
  assert.equal(after.get('Add'), before.get('Add')! - 1, 'the shift Add goes; 1 + scale stays (a [B, 1, D] vector)');
  const ln = anchors(model, 'LayerNormalization')[0]!;
  assert.equal(ln.inputs[2]?.producer?.opType, 'Split', 'the shift is the bias');
  const err = relL2(await run(model, feeds), ref);
  assert.ok(err < 1e-5, `relL2 ${err}`);
});

test('modulated LayerNorm does not fire on a per-token scale, nor on an affine LayerNorm', () => {
  const { model } = modulatedGraph('per-token');
  const r = tryRule(modulatedLayerNormFusion, anchors(model, 'LayerNormalization')[0]!);
  assert.ok(r instanceof NoMatch && /\[B, 1, D\]/.test(r.reason), String((r as NoMatch).reason));
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [1, 3, 4]);
  const s = b.unsqueeze(b.input('s', 'float32', [1, 4]), [1]);
  b.output(b.add(b.mul(b.op('LayerNormalization', [x, b.constF32([1, 2, 3, 4]), b.constF32(Array(4).fill(0))], { axis: -1 }), s), s), 'y');
  const r2 = tryRule(modulatedLayerNormFusion, anchors(b.model({ '': 17 }), 'LayerNormalization')[0]!);
  assert.ok(r2 instanceof NoMatch && /affine/.test(r2.reason), String((r2 as NoMatch).reason));
});

test('Flux and SD3 fixtures: every rotary and every modulated norm fused, outputs within 1e-4 of the unfused graph', async () => {
  for (const d of [fluxDenoiser(), sd3Denoiser()]) {
    const ref = await runOnce(d.build(), d);
    const m = d.build();
    const before = opCounts(m);
    const fired = fuse(m, 'cpu');
    const after = opCounts(m);
    // Flux rotates q and k of every attention; SD3 has no rotary
    assert.equal(fired.get('rotary-to-rotary-embedding') ?? 0, before.get('Neg') ?? 0, d.name);
    assert.equal(after.get('RotaryEmbedding') ?? 0, before.get('Neg') ?? 0, d.name);
    assert.equal(after.get('Neg') ?? 0, 0, d.name);
    // every LayerNorm of these two is an adaLN (norm1/norm1_context/norm2/norm_out, all modulated)
    assert.equal(fired.get('modulated-layer-norm'), before.get('LayerNormalization'), d.name);
    assert.ok(fired.get('modulated-layer-norm')! > 0, d.name);
    assert.ok(after.get('Mul')! < before.get('Mul')! - 2 * fired.get('modulated-layer-norm')!, `${d.name}: Mul ${before.get('Mul')} -> ${after.get('Mul')}`);
    const err = relL2(await runOnce(m, d), ref);
    assert.ok(err < 1e-4, `${d.name}: relL2 ${err}`);
    console.log(`${d.name}: ${[...before.keys()].filter((k) => before.get(k) !== after.get(k)).map((k) => `${k} ${before.get(k)}→${after.get(k) ?? 0}`).join(', ')}; new: ${[...after.keys()].filter((k) => !before.has(k)).map((k) => `${k} ${after.get(k)}`).join(', ')}; relL2 ${err.toExponential(2)}`);
  }
});

test('a profile without the broadcast LayerNorm keeps the modulation unfused; one without RotaryEmbedding keeps the rotation', () => {
  const m = fluxDenoiser().build();
  // dml: neither in its profile
  const fired = fuse(m, 'dml');
  assert.equal(fired.get('modulated-layer-norm') ?? 0, 0);
  assert.equal(fired.get('rotary-to-rotary-embedding') ?? 0, 0);
  assert.ok((opCounts(m).get('Neg') ?? 0) > 0);
  // webgpu runs RotaryEmbedding, and its LayerNorm is not claimed to broadcast
  const w = fluxDenoiser().build();
  const firedW = fuse(w, 'webgpu');
  assert.ok(firedW.get('rotary-to-rotary-embedding')! > 0);
  assert.equal(firedW.get('modulated-layer-norm') ?? 0, 0);
});

test('inside a cacher\'s If branches (first-block cache on Flux) every rotary and modulated norm still fuses', () => {
  const m = fbCacheTransform(fluxDenoiser().build());
  const count = (op: string) => [...allNodes(m.graph)].filter((n) => n.opType === op).length;
  const rotaries = count('Neg');
  const norms = count('LayerNormalization');
  assert.ok(count('If') > 0 && rotaries > 0);
  const fired = fuse(m, 'cpu');
  // norm_out reads the If's output: its rank comes from the branch
  assert.equal(fired.get('modulated-layer-norm'), norms);
  assert.equal(fired.get('rotary-to-rotary-embedding'), rotaries);
  assert.equal(count('Neg'), 0);
});

test('after a quantizer (DynamicQuantizeMatMul, MatMulNBits) and in a cacher\'s If, with no intermediate shape given (a file without value_info), the fusions fire as on the built graph', () => {
  const d = fluxDenoiser();
  const target = folderTarget(fixture('models', d.name));
  for (const [combo, op] of [[['int8Dynamic', 'fbcache'], 'DynamicQuantizeMatMul'], [['int4WeightOnly'], 'MatMulNBits']] as const) {
    const transformed = () => combo.reduce((m, name) => {
      const a = ALGORITHMS.get(name)! as Algorithm;
      return a.apply(a.schema.parse({}), target).transform!(d.component, m);
    }, d.build());
    const built = fuse(transformed(), 'cpu');
    const m = transformed();
    assert.ok([...allNodes(m.graph)].some((n) => n.opType === op), `${combo}: ${op} in the graph`);
    for (const n of allNodes(m.graph)) for (const o of n.outputs) if (!m.graph.outputs.includes(o)) o.shape = undefined;
    const fired = fuse(m, 'cpu');
    assert.ok(built.get('modulated-layer-norm')! > 0 && built.get('rotary-to-rotary-embedding')! > 0, `${combo}: ${[...built]}`);
    assert.deepEqual([...fired].sort(), [...built].sort(), combo.join(' + '));
  }
});
