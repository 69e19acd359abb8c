// Every scheduler fixture, free-running: our samples are fed forward, so errors would compound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SUPPORTED_SCHEDULERS } from '../../src/schedulers/index.js';
import { fixtureNames, openFixture, runTrajectory } from './fixture-util.js';

const TOL = 1e-5;
const names = fixtureNames();

test('scheduler fixtures are present and cover every supported class', () => {
  assert.ok(names.length >= 16, `found ${names.length} fixtures`);
  const classes = new Set(names.map((n) => openFixture(n).className));
  for (const c of classes) assert.ok(SUPPORTED_SCHEDULERS.includes(c), `${c} is not supported`);
  for (const c of SUPPORTED_SCHEDULERS) assert.ok(classes.has(c), `no fixture exercises ${c}`);
});

for (const name of names) {
  test(`fixture ${name} matches diffusers within ${TOL}`, () => {
    const fx = openFixture(name);
    const { scheduler, errors } = runTrajectory(fx);
    assert.equal(scheduler.className, fx.className);
    const steps = errors.filter(([k]) => k.startsWith('x.')).length;
    assert.equal(steps, fx.get('timesteps').length, 'one step per timestep');
    assert.ok(fx.has(`x.${steps - 1}`) && !fx.has(`x.${steps}`), 'every recorded step was compared');
    const bad = errors.filter(([, e]) => !(e < TOL));
    assert.deepEqual(bad, [], `relative L2 above ${TOL}: ${bad.map(([k, e]) => `${k}=${e}`).join(', ')}`);
  });
}

// The comparison must be able to fail: a wrong config gives errors far above the tolerance.
test('a wrong config fails the comparison', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['dpmpp2m_sd15', { solver_order: 1 }],
    ['euler_sd15', { prediction_type: 'v_prediction' }],
    ['ddim_sd15', { steps_offset: 0 }],
    ['unipc_sd15', { solver_type: 'bh1', final_sigmas_type: 'sigma_min' }],
    ['flowmatch_sd3', { shift: 1.0 }],
  ];
  for (const [name, change] of cases) {
    const fx = openFixture(name);
    const worst = Math.max(...runTrajectory({ ...fx, config: { ...fx.config, ...change } }).errors.map(([, e]) => e));
    assert.ok(worst > 1e-3, `${name} with ${JSON.stringify(change)} still matched (worst ${worst})`);
  }
});

test('a different noise stream fails the comparison for stochastic schedulers', () => {
  for (const name of ['euler_a_sd15', 'lcm_sd15', 'ddpm_sd15']) {
    const fx = openFixture(name);
    const shifted = { ...fx, get: (k: string) => fx.get(k.startsWith('noise.') ? `noise.${(Number(k.slice(6)) + 1) % 2}` : k) };
    const worst = Math.max(...runTrajectory(shifted).errors.filter(([k]) => k.startsWith('x.')).map(([, e]) => e));
    assert.ok(worst > 1e-3, `${name} ignored its noise (worst ${worst})`);
  }
});
