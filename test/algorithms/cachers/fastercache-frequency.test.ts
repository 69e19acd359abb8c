// The CFG-cache arithmetic against diffusers' (torch, test/fixtures/fastercache/make_frequency.py):
// a step that ran both halves keeps the frequency-split difference; each skipped step weights it
// (cumulatively) and rebuilds the unconditional prediction from the conditional one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CompatibilityError } from '../../../src/errors.js';
import { UnconditionalEstimate, lowFrequencies, lowFrequencyMask } from '../../../src/algorithms/cachers/fastercache-frequency.js';
import { fixture, relL2 } from '../../helpers.js';

interface Case {
  dims: number[];
  uncond: number[];
  cond: number[];
  steps: { weights: [number, number]; cond: number[]; uncond: number[] }[];
}
const { cases } = JSON.parse(readFileSync(fixture('fastercache', 'frequency.json'), 'utf8')) as { cases: Case[] };

test('fastercache CFG-cache: rebuilt unconditional predictions equal diffusers\' over three skipped steps', () => {
  assert.equal(cases.length, 4);
  for (const c of cases) {
    const e = new UnconditionalEstimate();
    assert.equal(e.ready, false);
    e.store(Float32Array.from(c.uncond), Float32Array.from(c.cond), c.dims);
    for (const [k, s] of c.steps.entries()) {
      const got = e.rebuild(Float32Array.from(s.cond), c.dims, { low: s.weights[0], high: s.weights[1] });
      const err = relL2(got, s.uncond);
      assert.ok(err < 1e-6, `[${c.dims.join(', ')}] step ${k}: relL2 ${err}`);
    }
  }
});

test('fastercache CFG-cache: equal weights need no split (uncond = cond + w·Δ); unequal weights do', () => {
  const c = cases[2]!;
  const e = new UnconditionalEstimate();
  e.store(Float32Array.from(c.uncond), Float32Array.from(c.cond), c.dims);
  const cond = Float32Array.from(c.steps[0]!.cond);
  const got = e.rebuild(cond, c.dims, { low: 1.3, high: 1.3 });
  const expected = cond.map((x, i) => x + 1.3 * (c.uncond[i]! - c.cond[i]!));
  assert.ok(relL2(got, expected) < 1e-6);
  // low and high parts add up to the signal, and the low part is not all of it
  const d = Float32Array.from(c.uncond, (u, i) => u - c.cond[i]!);
  const low = lowFrequencies(d, c.dims[2]!, c.dims[3]!);
  const high = d.map((x, i) => x - low[i]!);
  assert.ok(relL2(low, d) > 0.1 && relL2(high, d) > 0.1);
});

test('fastercache CFG-cache: the mask is diffusers\' disc of radius min(h, w) // 5 around the zero frequency', () => {
  // radius 0: the zero frequency only
  assert.deepEqual([...lowFrequencyMask(4, 4)], [1, ...Array(15).fill(0)]);
  // 5×6, radius 1: (0,0), its four neighbours, wrapping around
  const m = lowFrequencyMask(5, 6);
  const on = [...m].flatMap((v, i) => (v ? [[Math.floor(i / 6), i % 6]] : []));
  assert.deepEqual(on, [[0, 0], [0, 1], [0, 5], [1, 0], [4, 0]]);
});

test('fastercache CFG-cache: rebuilding before any store, or at another shape, is a typed error; reset forgets', () => {
  const e = new UnconditionalEstimate();
  assert.throws(() => e.rebuild(new Float32Array(4), [1, 1, 2, 2], { low: 1, high: 1 }), (x: unknown) => x instanceof CompatibilityError && x.code === 'CACHE_STATE');
  e.store(new Float32Array(4), new Float32Array(4), [1, 1, 2, 2]);
  assert.throws(() => e.rebuild(new Float32Array(8), [2, 1, 2, 2], { low: 1, high: 1 }), (x: unknown) => x instanceof CompatibilityError && x.code === 'CACHE_SHAPE');
  assert.throws(() => e.store(new Float32Array(4), new Float32Array(4), [1, 4]), (x: unknown) => x instanceof CompatibilityError && x.code === 'CACHE_SHAPE');
  e.reset();
  assert.equal(e.ready, false);
});
