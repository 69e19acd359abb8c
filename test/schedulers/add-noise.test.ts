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

// diffusers (main, 2026-12; torch 2.13), float32, x = sin(i), n = cos(3i), i < 8; config as `config` below:
//   s = Cls(**cfg); s.set_timesteps(10); s.set_begin_index(6); t = s.timesteps[6:7]
//   y = s.scale_noise(x, t, n) if FlowMatch else s.add_noise(x, n, t)
const DIFFUSERS: Record<string, number[]> = {
  EulerDiscreteScheduler: [0.93235838, -0.08155686, 1.80452013, -0.70837992, 0.02997178, -1.6672256, 0.33623636, 0.14630663],
  EulerAncestralDiscreteScheduler: [0.93235838, -0.08155686, 1.80452013, -0.70837992, 0.02997178, -1.6672256, 0.33623636, 0.14630663],
  DPMSolverMultistepScheduler: [0.75862849, -0.20279843, 1.32084107, -0.59926641, 0.14709705, -1.20108259, 0.31888932, 0.01251915],
  UniPCMultistepScheduler: [0.75862849, -0.20279843, 1.32084107, -0.59926641, 0.14709705, -1.20108259, 0.31888932, 0.01251915],
  DDIMScheduler: [0.6412344, 0.01088136, 1.31343913, -0.47596031, -0.03962046, -1.22296381, 0.20900968, 0.15291259],
  DDPMScheduler: [0.6412344, 0.01088136, 1.31343913, -0.47596031, -0.03962046, -1.22296381, 0.20900968, 0.15291259],
  LCMScheduler: [0.75757104, -0.20071721, 1.32094359, -0.59812939, 0.14527443, -1.20145798, 0.31784761, 0.01390594],
  PNDMScheduler: [0.75968325, -0.20487785, 1.32073522, -0.60040098, 0.14891818, -1.2007041, 0.31992954, 0.01113319],
  FlowMatchEulerDiscreteScheduler: [0.60215056, -0.26134577, 0.93993056, -0.49249306, 0.20703369, -0.83895397, 0.28644478, -0.06843373],
};

test('addNoise at the begin index matches diffusers for every scheduler', () => {
  const x8 = x.subarray(0, 8);
  const n8 = n.subarray(0, 8);
  for (const [cls, want] of Object.entries(DIFFUSERS)) {
    const s = createScheduler(config(cls), cls);
    s.setTimesteps(10);
    s.setBeginIndex(6);
    const y = s.addNoise(x8, n8, 6);
    want.forEach((w, i) => assert.ok(Math.abs(y[i]! - w) < 1e-6, `${cls}[${i}]: ${y[i]} vs ${w}`));
  }
  assert.deepEqual(Object.keys(DIFFUSERS).sort(), [...SUPPORTED_SCHEDULERS].sort(), 'every scheduler has a reference');
});
