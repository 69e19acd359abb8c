import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { tensor } from '../../src/core/tensor.js';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { Session, envSessionDefaults, f32, isOrtTensor, weightsFolder, type SessionOptions } from '../../src/runtime/session.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { tempDir } from '../pipelines/fixtures.js';
import { adaptFeed, adaptOutput } from '../../src/runtime/adapt.js';
import { ConfigError, RuntimeFailure } from '../../src/errors.js';
import { f32ToF16 } from '../../src/core/float.js';
import { relL2 } from '../helpers.js';

const WEIGHT = Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
function model() {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 4]);
  const h = b.scope('lin', () => b.matmul(x, b.weight('weight', tensor.f32([4, 4], WEIGHT))));
  b.output(b.op('Relu', [h]), 'relu');
  b.output(b.op('Neg', [h]), 'neg');
  return b.model();
}
const X = [1, 2, 3, 4, -1, -2, -3, -4];
const feeds = { x: f32([2, 4], X) };
// The model's outputs computed here, independently of onnxruntime: h = x · W (small integers, exact in float32).
const H = Array.from({ length: 8 }, (_, k) => {
  const [r, c] = [Math.floor(k / 4), k % 4];
  let acc = 0;
  for (let j = 0; j < 4; j++) acc += X[r * 4 + j]! * WEIGHT[j * 4 + c]!;
  return acc;
});
const RELU = H.map((v) => Math.max(v, 0));
const NEG = H.map((v) => -v); // -0 where h is 0, as IEEE negation gives

test('runs with named feeds, restricts fetches, and times the run', async () => {
  const s = await Session.create(model(), { threads: 1, optimizationLevel: 'basic' });
  assert.equal(s.provider, 'cpu');
  assert.deepEqual([...s.inputNames], ['x']);
  const all = await s.run(feeds);
  assert.deepEqual(Object.keys(all.outputs).sort(), ['neg', 'relu']);
  assert.ok(RELU.some((v) => v > 0) && NEG.some((v) => v !== 0), 'the reference is not trivially zero');
  assert.deepEqual([...(all.outputs.relu!.data as Float32Array)], RELU);
  assert.deepEqual([...(all.outputs.neg!.data as Float32Array)], NEG);
  assert.deepEqual(all.outputs.relu!.dims, [2, 4]);
  const one = await s.run(feeds, ['neg']);
  assert.deepEqual(Object.keys(one.outputs), ['neg']);
  assert.deepEqual([...(one.outputs.neg!.data as Float32Array)], NEG);
  // the timing is the wall time around ORT's run: a real, finite duration that the caller's own clock bounds
  const t0 = performance.now();
  const timed = await s.run(feeds);
  const outer = performance.now() - t0;
  assert.ok(Number.isFinite(timed.ms) && timed.ms > 0 && timed.ms <= outer, `ms ${timed.ms}, outer ${outer}`);
});

test('free-dimension overrides fix a dynamic axis', async () => {
  const s = await Session.create(model(), { freeDimensionOverrides: { batch: 2 } });
  await s.run(feeds);
  await assert.rejects(s.run({ x: f32([1, 4], [1, 2, 3, 4]) }), (e: unknown) => e instanceof RuntimeFailure && e.code === 'ORT_RUN');
});

test('static shapes reach onnxruntime; a run with other sizes re-creates the session for them (one at a time) and gives the right result', async () => {
  const s = await Session.create(model(), { staticShapes: { batch: 2 }, threads: 1 });
  const declared = async () => (await s.load()).inputMetadata.map((m) => (m.isTensor ? m.shape : []));
  assert.deepEqual(await declared(), [[2, 4]], 'onnxruntime sees the bound size, not the symbolic dim');
  assert.deepEqual([...((await s.run(feeds)).outputs.relu!.data as Float32Array)], RELU);
  assert.equal(s.reshapes.length, 0);
  // one row: the session is created again for batch 1, not refused
  const one = await s.run({ x: f32([1, 4], X.slice(0, 4)) });
  assert.deepEqual([...(one.outputs.relu!.data as Float32Array)], RELU.slice(0, 4));
  assert.deepEqual(s.reshapes.map((r) => r.dims), [{ batch: 1 }]);
  assert.ok(s.reshapes[0]!.ms > 0 && s.reshapeMs === s.reshapes[0]!.ms);
  assert.deepEqual(s.staticShapes, { batch: 1 });
  assert.deepEqual(await declared(), [[1, 4]]);
  // unloaded and loaded again (low-memory mode): still bound to the last sizes, no re-creation on their run
  await s.unload();
  await s.run({ x: f32([1, 4], X.slice(0, 4)) });
  assert.equal(s.reshapes.length, 1);
  assert.deepEqual(await declared(), [[1, 4]]);
  assert.deepEqual([...((await s.run(feeds)).outputs.neg!.data as Float32Array)], NEG);
  assert.deepEqual(s.reshapes.map((r) => r.dims), [{ batch: 1 }, { batch: 2 }]);
  await s.release();
});

test('an unavailable provider falls back to cpu with a warning', async () => {
  const warnings: string[] = [];
  const s = await Session.create(model(), { provider: 'cuda', onWarning: (m) => warnings.push(m) });
  assert.equal(s.provider, 'cpu');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /'cuda' is unavailable.*using cpu/);
  assert.deepEqual([...((await s.run(feeds)).outputs.relu!.data as Float32Array)], RELU);
});

// Whether this machine has a usable WebGPU adapter: ask for webgpu and see which provider ran
// (Session falls back to cpu, with one warning, when ORT cannot get an adapter).
const probeWarnings: string[] = [];
const probe = await Session.create(model(), { provider: 'webgpu', onWarning: (m) => probeWarnings.push(m) });
const NO_WEBGPU = probe.provider === 'webgpu'
  ? undefined
  : `no usable WebGPU adapter here (onnxruntime: ${/Failed to get a WebGPU adapter: [^)]*/.exec(probeWarnings[0] ?? '')?.[0] ?? probeWarnings[0]})`;

test('webgpu results agree with cpu and with the reference', { skip: NO_WEBGPU }, async () => {
  assert.equal(probe.provider, 'webgpu');
  assert.deepEqual(probeWarnings, []);
  const gpu = (await probe.run(feeds)).outputs;
  const cpu = (await (await Session.create(model())).run(feeds)).outputs;
  for (const name of ['relu', 'neg'] as const) {
    const ref = name === 'relu' ? RELU : NEG;
    const g = gpu[name]!.data as Float32Array;
    assert.ok(relL2(g, ref) < 1e-6, `${name}: webgpu vs reference ${relL2(g, ref)}`);
    assert.ok(relL2(g, cpu[name]!.data as Float32Array) < 1e-6, `${name}: webgpu vs cpu`);
  }
});

test('without a WebGPU adapter, webgpu falls back to cpu with one warning and correct results', { skip: NO_WEBGPU ? undefined : 'a WebGPU adapter exists here' }, async () => {
  assert.equal(probe.provider, 'cpu');
  assert.equal(probeWarnings.length, 1);
  assert.match(probeWarnings[0]!, /'webgpu' is unavailable.*using cpu/);
  assert.deepEqual([...((await probe.run(feeds)).outputs.relu!.data as Float32Array)], RELU);
});

test('an unknown provider is a ConfigError naming the option', async () => {
  await assert.rejects(Session.create(model(), { provider: 'tpu' as never }), (e: unknown) => e instanceof ConfigError && e.key === 'provider' && /tpu/.test(e.message));
});

test('feeds adapt to the declared dtype and rank; float16 outputs come back as float32', () => {
  const t = adaptFeed(f32([2], [999.7, 1]), { name: 'timestep', dtype: 'int64', dims: [undefined] });
  assert.deepEqual([...(t.data as BigInt64Array)], [999n, 1n]);
  const ids = adaptFeed({ dtype: 'int64', dims: [1, 2], data: BigInt64Array.of(5n, 7n) }, { name: 'input_ids', dtype: 'int32', dims: [undefined, undefined] });
  assert.deepEqual([...(ids.data as Int32Array)], [5, 7]);
  assert.deepEqual(adaptFeed(f32([4, 3], new Array(12).fill(0)), { name: 'img_ids', dtype: 'float32', dims: [1, undefined, 3] }).dims, [1, 4, 3]);
  assert.deepEqual(adaptFeed(f32([1, 4, 3], new Array(12).fill(0)), { name: 'img_ids', dtype: 'float32', dims: [undefined, 3] }).dims, [4, 3]);
  assert.throws(() => adaptFeed(f32([2, 4, 3], new Array(24).fill(0)), { name: 'img_ids', dtype: 'float32', dims: [undefined, 3] }), /img_ids/);
  const half = adaptFeed(f32([2], [0.5, -2]), { name: 'x', dtype: 'float16', dims: [2] });
  assert.deepEqual([...(half.data as Uint16Array)], [f32ToF16(0.5), f32ToF16(-2)]);
  assert.deepEqual([...(adaptOutput(half).data as Float32Array)], [0.5, -2]);
});

/** x [2] float32 -> state = float16(x + state_in): a state tensor that only goes back into the next run. */
function stateModel() {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2]);
  const prev = b.input('state_in', 'float16', [2]);
  const sum = b.add(x, b.cast(prev, 1));
  b.output(b.cast(sum, 10), 'state');
  b.output(sum, 'sum');
  return b.model();
}

test('kept outputs come back as onnxruntime holds them (float16 stays float16) and feed back without adaptation', async () => {
  const s = await Session.create(stateModel(), { threads: 1 });
  const zero = { dtype: 'float16' as const, dims: [2], data: new Uint16Array(2) };
  let r = await s.run({ x: f32([2], [1, 2]), state_in: zero }, undefined, { keep: ['state'] });
  assert.deepEqual(Object.keys(r.outputs), ['sum']);
  const state = r.kept.state!;
  assert.ok(isOrtTensor(state));
  assert.equal(state.type, 'float16');
  assert.deepEqual([...(state.data as Uint16Array)], [f32ToF16(1), f32ToF16(2)]);
  const before = s.adaptations;
  r = await s.run({ x: f32([2], [10, 20]), state_in: state }, undefined, { keep: ['state'] });
  assert.equal(s.adaptations - before, 1, 'only the host feed x was adapted');
  assert.deepEqual([...(r.outputs.sum!.data as Float32Array)], [11, 22]);
  assert.equal(r.kept.state!.type, 'float16');
  // without keep, float16 is widened to float32 on the host, as before
  assert.equal((await s.run({ x: f32([2], [1, 2]), state_in: zero })).outputs.state!.dtype, 'float32');
});

test('prepared feeds are adapted once and reused on every run', async () => {
  const s = await Session.create(stateModel(), { threads: 1 });
  // state_in is float16 in the graph: preparing casts it once
  const fixed = s.prepare({ state_in: f32([2], [0.5, 0.25]) });
  assert.equal(s.adaptations, 1);
  assert.equal(fixed.state_in!.type, 'float16');
  for (let i = 0; i < 3; i++) {
    const r = await s.run({ ...fixed, x: f32([2], [i, i]) }, ['sum']);
    assert.deepEqual([...(r.outputs.sum!.data as Float32Array)], [i + 0.5, i + 0.25]);
  }
  assert.equal(s.adaptations, 1 + 3, 'one adaptation per run: x only');
});

test('a model loaded from a folder and rewritten goes to onnxruntime with its weights read in place, and runs the same', async () => {
  const tmp = tempDir('session-in-place');
  const dir = tmp.dir;
  saveModel(model(), join(dir, 'model.onnx'), { sizeThreshold: 0 });
  const loaded = loadModel(join(dir, 'model.onnx'));
  assert.equal(weightsFolder(loaded), dir);
  // a rewrite around the weights (one more output) keeps them in place
  const g = loaded.graph;
  g.outputs.push(g.outputs[0]!.producer!.inputs[0]!);
  const s = await Session.create(loaded, { threads: 1 });
  const r = await s.run(feeds);
  assert.deepEqual([...(r.outputs.relu!.data as Float32Array)], RELU);
  assert.deepEqual([...(r.outputs.neg!.data as Float32Array)], NEG);
  assert.equal(Object.keys(r.outputs).length, 3);
  await s.release();
  // weights built in memory, or replaced by an in-memory tensor, are not in place
  assert.equal(weightsFolder(model()), undefined);
  [...loaded.graph.initializers.values()][0]!.const = tensor.f32([4, 4], WEIGHT);
  assert.equal(weightsFolder(loaded), undefined);
  tmp.cleanup();
});

test('SMASH_ORT_THREADS: a positive integer, else a ConfigError naming it; unset or empty changes nothing', () => {
  assert.equal(envSessionDefaults({}), undefined);
  assert.equal(envSessionDefaults({ SMASH_ORT_THREADS: '' }), undefined);
  assert.deepEqual(envSessionDefaults({ SMASH_ORT_THREADS: '2' }), {
    threads: 2,
    configEntries: { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' },
  });
  for (const bad of ['0', '-1', '1.5', 'two']) {
    assert.throws(() => envSessionDefaults({ SMASH_ORT_THREADS: bad }), (e: unknown) => e instanceof ConfigError && e.code === 'ORT_THREADS_ENV' && e.key === 'SMASH_ORT_THREADS' && e.message.includes(`'${bad}'`), bad);
  }
});

// onnxruntime's intra-op pool of n threads is the caller plus n - 1 threads of its own, which
// Linux lists in /proc/self/task while the session lives
test('SMASH_ORT_THREADS sets the intra-op threads of sessions that set none; a session\'s own `threads` wins', { skip: process.platform !== 'linux' && 'counts threads in /proc/self/task' }, async () => {
  const saved = process.env.SMASH_ORT_THREADS;
  const tasks = () => readdirSync('/proc/self/task').length;
  const added = async (opts: SessionOptions) => {
    const before = tasks();
    const s = await Session.create(model(), opts);
    const n = tasks() - before;
    await s.release();
    return n;
  };
  try {
    await added({ threads: 1 }); // node's own worker threads start with the first session
    delete process.env.SMASH_ORT_THREADS;
    const dflt = await added({});
    const n = dflt + 3; // a count onnxruntime's default did not give here
    process.env.SMASH_ORT_THREADS = String(n);
    assert.equal(await added({}), n - 1, `onnxruntime's default added ${dflt}`);
    assert.equal(await added({ threads: 2 }), 1);
    process.env.SMASH_ORT_THREADS = 'many';
    await assert.rejects(Session.create(model()), (e: unknown) => e instanceof ConfigError && e.code === 'ORT_THREADS_ENV');
  } finally {
    if (saved === undefined) delete process.env.SMASH_ORT_THREADS;
    else process.env.SMASH_ORT_THREADS = saved;
  }
});
