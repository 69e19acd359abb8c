// fora and fbcache on the SD3 transformer, one graph call at a time: a computed call gives the
// plain model's output, a reused call gives what the overwrite reference ('where') gives with
// the same kept values, and differs from computing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildComponent } from '../../../src/models/convert.js';
import type { Model } from '../../../src/ir/graph.js';
import { Session, type Feed, type HostTensor } from '../../../src/runtime/session.js';
import { foraTransform } from '../../../src/algorithms/cachers/fora.js';
import { fbCacheTransform } from '../../../src/algorithms/cachers/fbcache.js';
import type { Lowering } from '../../../src/algorithms/cachers/graph.js';
import { fixture, readF32, relL2 } from '../../helpers.js';

const REF = fixture('models', 'sd3-transformer-tiny', 'reference.safetensors');
const build = (): Model => buildComponent(fixture('models', 'sd3-transformer-tiny')).model!;
const f32 = (k: string): HostTensor => { const r = readF32(REF, k); return { dtype: 'float32', dims: r.shape, data: r.data }; };
const feeds = (t: number): Record<string, HostTensor> => ({
  hidden_states: f32('input.hidden_states'), encoder_hidden_states: f32('input.encoder_hidden_states'), pooled_projections: f32('input.pooled_projections'),
  timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(t, t) },
});
const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
const scalar = (x: number): HostTensor => ({ dtype: 'float32', dims: [], data: Float32Array.of(x) });

for (const [name, transform, compute, reuse, signal] of [
  ['fora', (m: Model, l: Lowering) => foraTransform(m, l), { 'cache.compute': bool(true) }, { 'cache.compute': bool(false) }, undefined],
  ['fbcache', (m: Model, l: Lowering) => fbCacheTransform(m, l), { 'cache.force': bool(true), 'cache.threshold': scalar(0) }, { 'cache.force': bool(false), 'cache.threshold': scalar(1e9) }, 'cache.signal'],
] as const) {
  test(`sd3-transformer-tiny ${name}: computed = plain, reused = the overwrite reference`, async () => {
    const plain = await Session.create(build(), { threads: 1 });
    const gated = await Session.create(transform(build(), 'if'), { threads: 1 });
    const ref = await Session.create(transform(build(), 'where'), { threads: 1 });
    try {
      const ins = gated.inputNames.filter((n) => n.startsWith('cache_in/') || n === 'cache.signal_in');
      assert.ok(ins.length > 1);
      const placeholder = Object.fromEntries(ins.map((n) => [n, { dtype: 'float32', dims: [1, 1, 1], data: new Float32Array(1) } as HostTensor]));
      const p999 = (await plain.run(feeds(999))).outputs.out_hidden_states!;
      const p500 = (await plain.run(feeds(500))).outputs.out_hidden_states!;
      const first = await gated.run({ ...feeds(999), ...compute, ...placeholder });
      assert.ok(relL2(first.outputs.out_hidden_states!.data as Float32Array, p999.data as Float32Array) < 1e-6);
      const kept: Record<string, Feed> = {};
      for (const n of ins) kept[n] = first.outputs[n === 'cache.signal_in' ? signal! : n.replace('cache_in/', 'cache_out/')]!;
      const a = (await gated.run({ ...feeds(500), ...reuse, ...kept })).outputs.out_hidden_states!.data as Float32Array;
      const b = (await ref.run({ ...feeds(500), ...reuse, ...kept })).outputs.out_hidden_states!.data as Float32Array;
      assert.ok(relL2(a, b) < 1e-6, `reused vs reference ${relL2(a, b)}`);
      assert.ok(relL2(a, p500.data as Float32Array) > 1e-4, 'reusing changes the output');
    } finally {
      await Promise.all([plain.release(), gated.release(), ref.release()]);
    }
  });
}
