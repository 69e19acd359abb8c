import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompatibilityError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Value, type Model, type Node } from '../../src/ir/graph.js';
import { tensor } from '../../src/core/tensor.js';
import { convexHull, gateRegion, newInputs } from '../../src/ir/region.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { buildFluxTransformer2DModel } from '../../src/models/flux-transformer-2d.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session, f32, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { fixture, readF32, relL2 } from '../helpers.js';

const bool = (b: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(b ? 1 : 0) });

/**
 * x ─► Mul(w_shared) ─► a ─► Add(w_own) ─► b ─► Relu ─► c (graph output 'y')
 *                       └──────────────────────────────► Mul(w_shared) ─► z (graph output 'z')
 * The region is {Add, Relu}: c escapes (a graph output), w_own moves, w_shared stays.
 */
function small() {
  const bld = new GraphBuilder();
  const x = bld.input('x', 'float32', [4]);
  const shared = bld.weight('w_shared', tensor.f32([4], [1, 2, 3, 4]));
  const a = bld.mul(x, shared);
  const b = bld.scope('block', () => bld.add(a, bld.weight('w_own', tensor.f32([4], [-5, 1, -1, 5]))));
  const c = bld.scope('block', () => bld.op('Relu', [b]));
  bld.output(c, 'y');
  bld.output(bld.mul(a, shared), 'z');
  return { model: bld.model(), a, b, c, region: [b.producer!, c.producer!] };
}

test('gateRegion: escaping graph outputs keep their names, weights only the region reads move, shared ones stay', async () => {
  const { model, region } = small();
  const g = model.graph;
  const r = gateRegion(g, region, { replacement: newInputs(g, (v) => `cached_${v.name}`, () => [4]), expose: () => 'cut' });
  assert.deepEqual(r.escaping.length, 1);
  assert.deepEqual(g.outputs.map((v) => v.name), ['y', 'z', 'cut']);
  assert.deepEqual(g.inputs.map((v) => [v.name, v.dtype, v.shape]), [['x', 'float32', [4]], ['cached_y', 'float32', [4]], ['cond', 'bool', []]]);
  assert.deepEqual(r.movedInitializers, ['block.w_own']);
  assert.deepEqual([...g.initializers.keys()], ['w_shared']);
  assert.deepEqual([...r.then.initializers.keys()], ['block.w_own']);
  assert.deepEqual(g.nodeList().map((n) => n.opType), ['Mul', 'If', 'Mul', 'Identity']);
  assert.equal(r.outputs[0]!.dtype, 'float32');
  for (const v of [...g.outputs, ...r.then.outputs, ...r.else.outputs]) assert.equal(v.dtype, 'float32', v.name);

  const s = await Session.create(model);
  const x = f32([4], [1, 1, 1, 1]);
  const on = await s.run({ x, cond: bool(true), cached_y: f32([4], [0, 0, 0, 0]) });
  assert.deepEqual([...(on.outputs.y!.data as Float32Array)], [0, 3, 2, 9]);
  assert.deepEqual([...(on.outputs.cut!.data as Float32Array)], [0, 3, 2, 9]);
  assert.deepEqual([...(on.outputs.z!.data as Float32Array)], [1, 4, 9, 16]);
  const off = await s.run({ x, cond: bool(false), cached_y: f32([4], [7, 8, 9, 10]) });
  assert.deepEqual([...(off.outputs.y!.data as Float32Array)], [7, 8, 9, 10]);
  await s.release();
});

test('gateRegion: an exposed escaping value is the If\'s own output, renamed (no Identity copy), read by its consumers too', async () => {
  const bld = new GraphBuilder();
  const x = bld.input('x', 'float32', [4]);
  const b = bld.add(x, bld.weight('w_own', tensor.f32([4], [-5, 1, -1, 5])));
  const c = bld.op('Relu', [b]);
  bld.output(bld.mul(c, c), 'y');
  const model = bld.model();
  const g = model.graph;
  const r = gateRegion(g, [b.producer!, c.producer!], { replacement: newInputs(g, () => 'kept', () => [4]), expose: () => 'cut' });
  assert.deepEqual(g.nodeList().map((n) => n.opType), ['If', 'Mul']);
  assert.deepEqual(g.outputs.map((v) => v.name), ['y', 'cut']);
  assert.equal(r.exposed[0], r.outputs[0]);
  assert.equal(g.outputs[1], r.outputs[0]);
  assert.deepEqual(g.nodeList()[1]!.inputs, [r.outputs[0], r.outputs[0]]);

  const s = await Session.create(model);
  const on = await s.run({ x: f32([4], [1, 1, 1, 1]), cond: bool(true), kept: f32([4], [0, 0, 0, 0]) });
  assert.deepEqual([...(on.outputs.cut!.data as Float32Array)], [0, 2, 0, 6]);
  assert.deepEqual([...(on.outputs.y!.data as Float32Array)], [0, 4, 0, 36]);
  const off = await s.run({ x: f32([4], [1, 1, 1, 1]), cond: bool(false), kept: f32([4], [1, 2, 3, 4]) });
  assert.deepEqual([...(off.outputs.cut!.data as Float32Array)], [1, 2, 3, 4]);
  assert.deepEqual([...(off.outputs.y!.data as Float32Array)], [1, 4, 9, 16]);
  await s.release();
});

test('gateRegion refuses a region with a hole, and convexHull fills it', () => {
  const { model, a, b, c } = small();
  const g = model.graph;
  // region {Mul(a), Relu} without the Add between them
  const holed = [a.producer!, c.producer!];
  assert.throws(() => gateRegion(g, holed, { replacement: newInputs(g, (v) => `r_${v.name}`) }), (e: unknown) =>
    e instanceof CompatibilityError && e.code === 'REGION_NOT_CONVEX' && e.message.includes(b.producer!.name));
  assert.deepEqual([...convexHull(g, holed)].map((n) => n.opType).sort(), ['Add', 'Mul', 'Relu']);
  assert.equal(g.nodeCount, 4, 'a refused region leaves the graph as it was');
  assert.throws(() => gateRegion(g, [b.producer!], { replacement: new Map([[b, new Value('wrong', 'int64')]]) }), /int64/);
});

// ---------------------------------------------------------------------------------------------
// The fixture Flux transformer: every block after the first behind one If

const DIR = fixture('models', 'flux-transformer-tiny');
const REF = join(DIR, 'reference.safetensors');

function buildFlux(): Model {
  return buildFluxTransformer2DModel(ModelConfig.load(DIR), new Weights(Checkpoint.open(DIR))).model!;
}

function referenceFeeds(t: number): Record<string, HostTensor> {
  const r = (k: string) => readF32(REF, `input.${k}`);
  const host = (x: { data: Float32Array; shape: number[] }, dims = x.shape): HostTensor => ({ dtype: 'float32', dims, data: x.data });
  const img = r('img_ids');
  const txt = r('txt_ids');
  return {
    hidden_states: host(r('hidden_states')), encoder_hidden_states: host(r('encoder_hidden_states')),
    pooled_projections: host(r('pooled_projections')), timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(t) },
    img_ids: host(img, img.shape.slice(1)), txt_ids: host(txt, txt.shape.slice(1)), guidance: host(r('guidance')),
  };
}

const BLOCK = /^\/(transformer_blocks|single_transformer_blocks)\.(\d+)\//;
const afterFirst = (n: Node) => {
  const m = BLOCK.exec(n.name);
  return !!m && !(m[1] === 'transformer_blocks' && m[2] === '0');
};

test('flux: the blocks after the first behind an If give the original output (cond true) or the replacements (cond false), after save and load', async () => {
  const feeds = referenceFeeds(0.5);
  const plain = await Session.create(buildFlux());
  const want = (await plain.run(feeds)).outputs.out_hidden_states!;
  await plain.release();

  const model = buildFlux();
  const g = model.graph;
  const blocks = g.nodeList().filter(afterFirst);
  const hull = convexHull(g, blocks);
  const extra = [...hull].filter((n) => !afterFirst(n));
  // only top-level glue between the double and the single blocks joins (the Concat of the two streams)
  for (const n of extra) assert.ok(!BLOCK.test(n.name), n.name);
  const region = gateRegion(g, hull, { name: '/blocks_after_first/If', cond: 'use_blocks', replacement: newInputs(g, (_v, i) => `cached.${i}`, () => ['batch_size', null, null]), expose: (_v, i) => `cut.${i}` });
  console.log(`flux region: ${hull.size} nodes (${extra.length} glue: ${extra.map((n) => n.name).join(', ')}), ${region.escaping.length} escaping, ${region.movedInitializers.length} initializers moved`);
  // weights of gated blocks live in the branch, the first block's stay outside
  const moved = new Set(region.movedInitializers);
  for (const k of Checkpoint.open(DIR).names) {
    const gatedWeight = /^(transformer_blocks\.[1-9]|single_transformer_blocks\.)/.test(k);
    assert.equal(moved.has(k), gatedWeight, k);
    assert.equal(g.initializers.has(k), !gatedWeight, k);
  }

  const dir = mkdtempSync(join(tmpdir(), 'region-'));
  try {
    saveModel(model, join(dir, 'model.onnx'), { sizeThreshold: 0 });
    const loaded = loadModel(join(dir, 'model.onnx'));
    const ifs = loaded.graph.nodeList().filter((n) => n.opType === 'If');
    assert.equal(ifs.length, 1);
    const thenLoaded = ifs[0]!.attr('then_branch')!;
    assert.ok(thenLoaded.type === 'graph' && thenLoaded.value.initializers.size === region.movedInitializers.length);
    const s = await Session.create(loaded);
    const cachedInputs = region.escaping.map((_v, i) => `cached.${i}`);
    const dummy = Object.fromEntries(cachedInputs.map((k) => [k, f32([1, 1, 1], [0])]));
    const on = await s.run({ ...feeds, ...dummy, use_blocks: bool(true) });
    const err = relL2(on.outputs.out_hidden_states!.data as Float32Array, want.data as Float32Array);
    console.log(`flux gated, cond=true vs plain graph: relL2 ${err.toExponential(2)}`);
    assert.ok(err < 1e-6, `relL2 ${err}`);
    assert.ok(relL2(on.outputs.out_hidden_states!.data as Float32Array, readF32(REF, 'output.sample.t0.5').data) < 1e-4);

    // cond false: the If returns whatever is fed (here the cut values, halved), exactly
    const cuts = region.escaping.map((_v, i) => on.outputs[`cut.${i}`]!);
    const halved = cuts.map((c) => f32(c.dims, (c.data as Float32Array).map((x) => x / 2)));
    const off = await s.run({ ...feeds, ...Object.fromEntries(halved.map((h, i) => [cachedInputs[i]!, h])), use_blocks: bool(false) });
    halved.forEach((h, i) => assert.deepEqual(off.outputs[`cut.${i}`]!.data, h.data));

    // ... and the rest of the graph computes from them what a graph with them substituted by hand does
    const manual = buildFlux();
    const mg = manual.graph;
    const byName = mg.values();
    region.escaping.forEach((v, i) => {
      // the If's outputs carry the exposed names; inside the branch, the original ones get a suffix
      const orig = byName.get(v.name.slice(0, -'/blocks_after_first/If/then'.length))!;
      const input = new Value(cachedInputs[i]!, orig.dtype ?? 'float32', ['batch_size', null, null]);
      mg.inputs.push(input);
      mg.replaceAllUses(orig, input);
    });
    deadCodeElimination.run(manual);
    assert.ok(!mg.nodeList().some(afterFirst), 'the hand-substituted graph has no gated block left');
    const ms = await Session.create(manual);
    const expect = await ms.run({ ...feeds, ...Object.fromEntries(halved.map((h, i) => [cachedInputs[i]!, h])) });
    const err2 = relL2(off.outputs.out_hidden_states!.data as Float32Array, expect.outputs.out_hidden_states!.data as Float32Array);
    assert.ok(err2 < 1e-6, `cond=false vs hand-substituted graph: relL2 ${err2}`);
    await ms.release();
    await s.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
