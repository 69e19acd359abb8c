// Scheduler behaviour beyond the fixtures: noise sources, state reset, step order, shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, SmashError } from '../../src/errors.js';
import { calculateShift, createScheduler, type Scheduler } from '../../src/schedulers/index.js';
import { Generator } from '../../src/tensors/random.js';
import { openFixture, relL2, standInModel } from './fixture-util.js';

function run(s: Scheduler, x0: Float32Array, opts: { seed?: number } = {}): Float32Array {
  const g = opts.seed === undefined ? undefined : new Generator(opts.seed);
  let x = x0;
  for (let i = 0; i < s.timesteps.length; i++) {
    const mo = standInModel(s.scaleModelInput(x, i), s.timesteps[i]!, i);
    x = s.step(mo, i, x, g ? { generator: g } : undefined);
  }
  return x;
}

test('stochastic schedulers draw from the generator, deterministically, and refuse to run without noise', () => {
  for (const name of ['euler_a_sd15', 'lcm_sd15', 'ddpm_sd15']) {
    const fx = openFixture(name);
    const s = createScheduler(fx.config);
    s.setTimesteps(fx.steps);
    const x0 = fx.get('x0');
    const a = run(s, x0, { seed: 5 });
    s.setTimesteps(fx.steps);
    const b = run(s, x0, { seed: 5 });
    s.setTimesteps(fx.steps);
    const c = run(s, x0, { seed: 6 });
    assert.deepEqual(a, b, name);
    assert.notDeepEqual(a, c, name);
    assert.ok(a.every(Number.isFinite));
    s.setTimesteps(fx.steps);
    assert.throws(() => run(s, x0), (e: unknown) => e instanceof ConfigError && e.code === 'SCHEDULER_NOISE_REQUIRED', name);
    assert.throws(
      () => s.step(x0, 0, x0, { noise: () => new Float32Array(3) }),
      (e: unknown) => e instanceof ConfigError && e.code === 'SCHEDULER_NOISE_SHAPE',
    );
  }
});

test('setTimesteps resets multistep history: a second run is identical', () => {
  for (const name of ['dpmpp2m_sd15', 'unipc_sd15', 'pndm_sd15']) {
    const fx = openFixture(name);
    const s = createScheduler(fx.config);
    s.setTimesteps(fx.steps);
    const a = run(s, fx.get('x0'));
    s.setTimesteps(fx.steps);
    const b = run(s, fx.get('x0'));
    assert.deepEqual(a, b, `${name}: the second run is bit for bit the first`);
    // and both are the reference's final sample (a history left over would drift from it)
    const err = relL2(b, fx.get(`x.${s.timesteps.length - 1}`));
    assert.ok(err < 1e-5, `${name}: second run vs diffusers' final sample, relative L2 ${err}`);
  }
});

test('multistep schedulers refuse out-of-order steps; all refuse bad indices and shapes', () => {
  const fx = openFixture('dpmpp2m_sd15');
  const s = createScheduler(fx.config);
  const x = fx.get('x0');
  assert.throws(() => s.step(x, 0, x), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_NOT_SET');
  s.setTimesteps(10);
  assert.throws(() => s.step(x, 1, x), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_STEP_ORDER');
  assert.throws(() => s.scaleModelInput(x, 10), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_STEP_INDEX');
  assert.throws(() => s.step(x.subarray(1), 0, x), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_SHAPE');
  assert.throws(() => s.setTimesteps(0), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_STEPS');
  assert.throws(() => s.setTimesteps(1001), (e: unknown) => e instanceof SmashError && e.code === 'SCHEDULER_STEPS');
});

test('init noise sigma follows diffusers', () => {
  const euler = createScheduler(openFixture('euler_sd15').config);
  euler.setTimesteps(10);
  // leading spacing: sqrt(sigma_max^2 + 1)
  assert.ok(Math.abs(euler.initNoiseSigma - Math.sqrt(euler.sigmas![0]! ** 2 + 1)) < 1e-5);
  const trailing = createScheduler(openFixture('euler_sdxl_trailing').config);
  trailing.setTimesteps(4);
  assert.equal(trailing.initNoiseSigma, trailing.sigmas![0]);
  for (const name of ['ddim_sd15', 'dpmpp2m_sd15', 'flowmatch_sd3', 'pndm_sd15']) {
    assert.equal(createScheduler(openFixture(name).config).initNoiseSigma, 1, name);
  }
});

test('timestep spacings and options beyond the fixtures behave as in diffusers', () => {
  const base = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };
  const ts = (cls: string, extra: object, n: number) => {
    const s = createScheduler({ _class_name: cls, ...base, ...extra });
    s.setTimesteps(n);
    return Array.from(s.timesteps);
  };
  assert.deepEqual(ts('DDIMScheduler', { timestep_spacing: 'linspace' }, 4), [999, 666, 333, 0]);
  assert.deepEqual(ts('DDPMScheduler', { timestep_spacing: 'trailing' }, 4), [999, 749, 499, 249]);
  assert.deepEqual(ts('EulerDiscreteScheduler', { timestep_spacing: 'linspace' }, 4), [999, 666, 333, 0]);
  assert.deepEqual(ts('EulerDiscreteScheduler', { timestep_spacing: 'linspace' }, 3), [999, 499.5, 0]);
  assert.deepEqual(ts('PNDMScheduler', { skip_prk_steps: true, timestep_spacing: 'trailing' }, 4), [999, 749, 749, 499, 249]);
  assert.deepEqual(ts('UniPCMultistepScheduler', { timestep_spacing: 'leading', steps_offset: 1 }, 4), [801, 601, 401, 201]);
  assert.deepEqual(ts('DPMSolverMultistepScheduler', { timestep_spacing: 'trailing' }, 4), [999, 749, 499, 249]);
  assert.deepEqual(ts('LCMScheduler', {}, 2), [999, 499]);

  // the option sets beyond the fixtures are compared with diffusers' trajectories in options.test.ts
});

test('calculateShift matches the Flux pipeline formula', () => {
  const cfg = { base_shift: 0.5, max_shift: 1.15, base_image_seq_len: 256, max_image_seq_len: 4096 };
  assert.ok(Math.abs(calculateShift(256, cfg) - 0.5) < 1e-12);
  assert.ok(Math.abs(calculateShift(4096, cfg) - 1.15) < 1e-12);
  assert.ok(Math.abs(calculateShift(1024) - (0.5 + (0.65 * 768) / 3840)) < 1e-12);
});
