// Image-to-image support in every scheduler: add_noise / scale_noise at a step, and set_begin_index.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SmashError } from '../../src/errors.js';
import { createScheduler, SUPPORTED_SCHEDULERS } from '../../src/schedulers/index.js';

const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, steps_offset: 1 };
const config = (cls: string) => (cls === 'FlowMatchEulerDiscreteScheduler' ? { shift: 3.0 } : cls === 'PNDMScheduler' ? { ...SD, skip_prk_steps: true } : SD);
const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
const n = Float32Array.from({ length: 64 }, (_, i) => Math.cos(3 * i));

test('addNoise: flow matching interpolates, sigma schedulers add σ·noise, the others keep unit variance', () => {
  for (const cls of SUPPORTED_SCHEDULERS) {
    const s = createScheduler(config(cls), cls);
    s.setTimesteps(10);
    const k = 6;
    const y = s.addNoise(x, n, k);
    // solve y = a·x + b·n for (a, b) from two coordinates
    const det = x[1]! * n[2]! - x[2]! * n[1]!;
    const a = (y[1]! * n[2]! - y[2]! * n[1]!) / det;
    const b = (x[1]! * y[2]! - x[2]! * y[1]!) / det;
    if (cls === 'FlowMatchEulerDiscreteScheduler') {
      assert.ok(Math.abs(a + b - 1) < 1e-5 && Math.abs(b - s.sigmas![k]!) < 1e-5, cls);
      assert.deepEqual(Array.from(s.addNoise(x, n, 0)), Array.from(n), 'sigma 1: pure noise');
    } else if (cls === 'EulerDiscreteScheduler' || cls === 'EulerAncestralDiscreteScheduler') {
      assert.ok(Math.abs(a - 1) < 1e-5 && Math.abs(b - s.sigmas![k]!) < 1e-4, cls);
    } else {
      assert.ok(Math.abs(a * a + b * b - 1) < 1e-4, `${cls}: ${a}² + ${b}²`);
      const later = s.addNoise(x, n, 9);
      const a9 = (later[1]! * n[2]! - later[2]! * n[1]!) / det;
      assert.ok(a9 > a, `${cls}: less noise at a later step`);
    }
  }
});

test('setBeginIndex: multistep schedulers run from the begin index, and only from there', () => {
  for (const cls of ['DPMSolverMultistepScheduler', 'UniPCMultistepScheduler', 'PNDMScheduler']) {
    const s = createScheduler(config(cls), cls);
    s.setTimesteps(10);
    assert.throws(() => s.step(x, 5, x), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_STEP_ORDER', cls);
    s.setTimesteps(10);
    s.setBeginIndex(5);
    let sample: Float32Array = x;
    for (let i = 5; i < s.timesteps.length; i++) sample = s.step(Float32Array.from(sample, (v) => 0.1 * v), i, sample);
    assert.ok(sample.every(Number.isFinite), cls);
  }
});
