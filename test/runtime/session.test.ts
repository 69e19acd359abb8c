import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../../src/ir/builder.js';
import { tensor } from '../../src/core/tensor.js';
import { Session, f32, isOrtTensor } from '../../src/runtime/session.js';
import { adaptFeed, adaptOutput } from '../../src/runtime/adapt.js';
import { ConfigError, RuntimeFailure } from '../../src/errors.js';
import { f32ToF16 } from '../../src/core/float.js';

function model() {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 4]);
  const h = b.scope('lin', () => b.matmul(x, b.weight('weight', tensor.f32([4, 4], Array.from({ length: 16 }, (_, i) => (i % 5) - 2)))));
  b.output(b.op('Relu', [h]), 'relu');
  b.output(b.op('Neg', [h]), 'neg');
  return b.model();
}
const feeds = { x: f32([2, 4], [1, 2, 3, 4, -1, -2, -3, -4]) };

test('runs with named feeds, restricts fetches, and times the run', async () => {
  const s = await Session.create(model(), { threads: 1, optimizationLevel: 'basic' });
  assert.equal(s.provider, 'cpu');
  assert.deepEqual([...s.inputNames], ['x']);
  const all = await s.run(feeds);
  assert.deepEqual(Object.keys(all.outputs).sort(), ['neg', 'relu']);
  const one = await s.run(feeds, ['neg']);
  assert.deepEqual(Object.keys(one.outputs), ['neg']);
  assert.ok(one.ms >= 0);
  assert.deepEqual([...(one.outputs.neg!.data as Float32Array)], [...(all.outputs.neg!.data as Float32Array)]);
});

test('free-dimension overrides fix a dynamic axis', async () => {
  const s = await Session.create(model(), { freeDimensionOverrides: { batch: 2 } });
  await s.run(feeds);
  await assert.rejects(s.run({ x: f32([1, 4], [1, 2, 3, 4]) }), (e: unknown) => e instanceof RuntimeFailure && e.code === 'ORT_RUN');
});

test('an unavailable provider falls back to cpu with a warning', async () => {
  const warnings: string[] = [];
  const s = await Session.create(model(), { provider: 'cuda', onWarning: (m) => warnings.push(m) });
  assert.equal(s.provider, 'cpu');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /'cuda' is unavailable.*using cpu/);
  const cpu = await (await Session.create(model())).run(feeds);
  assert.deepEqual((await s.run(feeds)).outputs.relu!.data, cpu.outputs.relu!.data);
});

test('webgpu runs where a Vulkan GPU exists, else falls back to cpu; results agree with cpu', async () => {
  const warnings: string[] = [];
  const s = await Session.create(model(), { provider: 'webgpu', onWarning: (m) => warnings.push(m) });
  assert.ok(s.provider === 'webgpu' || (s.provider === 'cpu' && warnings.length === 1));
  const cpu = (await (await Session.create(model())).run(feeds)).outputs.relu!.data as Float32Array;
  const got = (await s.run(feeds)).outputs.relu!.data as Float32Array;
  for (let i = 0; i < cpu.length; i++) assert.ok(Math.abs(cpu[i]! - got[i]!) < 1e-5);
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
