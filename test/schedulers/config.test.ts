// Config handling: unsupported values are refused with a ConfigError naming the key and the options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { SUPPORTED_SCHEDULERS, createScheduler, loadScheduler, parseConfigJson } from '../../src/schedulers/index.js';
import { tempDir } from '../helpers.js';

const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };

function expectConfigError(fn: () => unknown, key: string, ...mentions: string[]): ConfigError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ConfigError, `expected ConfigError for ${key}, got ${String(err)}`);
  assert.equal(err.key, key);
  assert.ok(err.message.includes(key), `message names ${key}: ${err.message}`);
  for (const m of mentions) assert.ok(err.message.includes(m), `message mentions ${m}: ${err.message}`);
  return err;
}

test('unknown _class_name lists the supported schedulers', () => {
  const err = expectConfigError(() => createScheduler({ _class_name: 'HeunDiscreteScheduler' }), '_class_name', 'HeunDiscreteScheduler');
  for (const c of SUPPORTED_SCHEDULERS) assert.ok(err.message.includes(c));
  expectConfigError(() => createScheduler({}), '_class_name');
  expectConfigError(() => createScheduler({ _class_name: 'toString' }), '_class_name');
});

test('className argument overrides _class_name', () => {
  assert.equal(createScheduler({ _class_name: 'PNDMScheduler', ...SD }, 'EulerDiscreteScheduler').className, 'EulerDiscreteScheduler');
});

test('unsupported values name the key, the value and what is supported', () => {
  const cases: [string, Record<string, unknown>, string, string[]][] = [
    ['DPMSolverMultistepScheduler', { algorithm_type: 'sde-dpmsolver++' }, 'algorithm_type', ['sde-dpmsolver++', 'dpmsolver++']],
    ['DPMSolverMultistepScheduler', { solver_order: 4 }, 'solver_order', ['4', '1, 2, 3']],
    ['DPMSolverMultistepScheduler', { variance_type: 'learned_range' }, 'variance_type', ['learned_range']],
    ['DPMSolverMultistepScheduler', { final_sigmas_type: 'denoise_to_zero' }, 'final_sigmas_type', ['zero', 'sigma_min']],
    ['DDIMScheduler', { thresholding: true }, 'thresholding', ['true', 'false']],
    ['DDIMScheduler', { timestep_spacing: 'uniform' }, 'timestep_spacing', ['uniform', 'linspace', 'leading', 'trailing']],
    ['DDIMScheduler', { prediction_type: 'flow' }, 'prediction_type', ['epsilon', 'v_prediction', 'sample']],
    ['DDIMScheduler', { beta_schedule: 'sigmoid' }, 'beta_schedule', ['squaredcos_cap_v2']],
    ['PNDMScheduler', { skip_prk_steps: false }, 'skip_prk_steps', ['false', 'true']],
    ['PNDMScheduler', { prediction_type: 'sample' }, 'prediction_type', ['epsilon']],
    ['EulerDiscreteScheduler', { interpolation_type: 'cubic' }, 'interpolation_type', ['log_linear']],
    ['EulerDiscreteScheduler', { use_exponential_sigmas: true }, 'use_exponential_sigmas', ['true']],
    ['EulerDiscreteScheduler', { timestep_type: 'fractional' }, 'timestep_type', ['continuous']],
    ['EulerAncestralDiscreteScheduler', { prediction_type: 'sample' }, 'prediction_type', ['v_prediction']],
    ['UniPCMultistepScheduler', { solver_type: 'bh3' }, 'solver_type', ['bh1', 'bh2']],
    ['UniPCMultistepScheduler', { solver_p: { _class_name: 'DDIMScheduler' } }, 'solver_p', ['null']],
    ['UniPCMultistepScheduler', { predict_x0: false }, 'final_sigmas_type', ['predict_x0', 'sigma_min']],
    ['UniPCMultistepScheduler', { solver_type: 'bh1' }, 'final_sigmas_type', ['bh1', 'sigma_min']],
    ['DDPMScheduler', { variance_type: 'learned_range' }, 'variance_type', ['fixed_small']],
    ['LCMScheduler', { thresholding: true }, 'thresholding', []],
    ['FlowMatchEulerDiscreteScheduler', { use_karras_sigmas: true }, 'use_karras_sigmas', []],
    ['FlowMatchEulerDiscreteScheduler', { time_shift_type: 'linear' }, 'time_shift_type', ['exponential']],
  ];
  for (const [cls, change, key, mentions] of cases) {
    expectConfigError(() => createScheduler({ _class_name: cls, ...SD, skip_prk_steps: true, ...change }), key, cls, ...mentions);
  }
});

test('invalid types are ConfigErrors too', () => {
  expectConfigError(() => createScheduler({ _class_name: 'DDIMScheduler', num_train_timesteps: 'many' }), 'num_train_timesteps');
  expectConfigError(() => createScheduler({ _class_name: 'DDIMScheduler', clip_sample: 'yes' }), 'clip_sample');
  expectConfigError(() => createScheduler({ _class_name: 'DDIMScheduler', trained_betas: [0.1, 0.2] }), 'trained_betas');
});

test('unknown keys and nulls are ignored; deis / bh2 solver aliases are accepted as diffusers maps them', () => {
  const s = createScheduler({ _class_name: 'EulerDiscreteScheduler', ...SD, some_future_key: 3, sigma_min: null, _diffusers_version: '0.30.3' });
  assert.equal(s.config['interpolation_type'], 'linear');
  createScheduler({ _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'deis', solver_type: 'bh2' });
  createScheduler({ _class_name: 'UniPCMultistepScheduler', solver_type: 'midpoint' });
});

test('dynamic shifting needs mu', () => {
  const s = createScheduler({ _class_name: 'FlowMatchEulerDiscreteScheduler', use_dynamic_shifting: true });
  expectConfigError(() => s.setTimesteps(4), 'mu');
  s.setTimesteps(4, { mu: 0.8 });
  assert.equal(s.timesteps.length, 4);
});

test('parseConfigJson reads the bare Infinity/NaN tokens Python writes, not inside strings', () => {
  const v = parseConfigJson('{"a": -Infinity, "b": Infinity, "c": NaN, "d": "x -Infinity \\" NaN", "e": [1, -Infinity]}') as Record<string, unknown>;
  assert.equal(v['a'], -Infinity);
  assert.equal(v['b'], Infinity);
  assert.ok(Number.isNaN(v['c']));
  assert.equal(v['d'], 'x -Infinity " NaN');
  assert.deepEqual(v['e'], [1, -Infinity]);
});

test('loadScheduler reads pipeline folders, scheduler folders and files', () => {
  const fixtures = fileURLToPath(new URL('../fixtures/pipelines/', import.meta.url));
  const sd = loadScheduler(join(fixtures, 'sd15-tiny'));
  assert.equal(sd.className, 'PNDMScheduler');
  sd.setTimesteps(8);
  assert.equal(sd.timesteps.length, 9);
  assert.equal(loadScheduler(join(fixtures, 'flux-tiny', 'scheduler')).className, 'FlowMatchEulerDiscreteScheduler');
  assert.equal(loadScheduler(join(fixtures, 'flux-tiny', 'scheduler', 'scheduler_config.json')).className, 'FlowMatchEulerDiscreteScheduler');
  const trained = fileURLToPath(new URL('../fixtures/trained/', import.meta.url));
  assert.equal(loadScheduler(join(trained, 'shapes-sd')).className, 'EulerDiscreteScheduler');
  assert.equal(loadScheduler(join(trained, 'shapes-flux')).className, 'FlowMatchEulerDiscreteScheduler');
});

test('loadScheduler: bad JSON is a ModelFormatError naming the file; config errors name it too', () => {
  const dir = tempDir('smash-sched-');
  mkdirSync(join(dir, 'scheduler'));
  const file = join(dir, 'scheduler', 'scheduler_config.json');
  writeFileSync(file, '{"_class_name": "DDIMScheduler",');
  assert.throws(() => loadScheduler(dir), (e: unknown) => e instanceof ModelFormatError && e.file === file && e.message.includes(file));
  writeFileSync(file, '[1, 2]');
  assert.throws(() => loadScheduler(dir), (e: unknown) => e instanceof ModelFormatError && e.file === file);
  writeFileSync(file, '{"_class_name": "DDIMScheduler", "thresholding": true}');
  assert.throws(() => loadScheduler(dir), (e: unknown) => e instanceof ConfigError && e.key === 'thresholding' && e.message.includes(file));
  assert.throws(() => loadScheduler(join(dir, 'nope')), (e: unknown) => e instanceof ModelFormatError);
});
