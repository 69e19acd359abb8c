// Every option set the schedulers accept beyond the copied fixtures, against diffusers 0.30.3:
// test/fixtures/schedulers/options/ holds one trajectory per (option set, step count), made by
// scripts/fixtures/scheduler_trajectories.py with the fixtures' stand-in model. Free-running, as
// fixtures.test.ts: our samples are fed forward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.js';
import { createScheduler } from '../../src/schedulers/index.js';
import { OPTIONS_DIR, fixtureNames, openFixture, runTrajectory } from './fixture-util.js';

const TOL = 1e-5;
// Euler ancestral with zero terminal SNR starts at sigma_max = 4096 and steps to sigma ~ 1: the
// update x + (x - x0) / sigma * (sigma_down - sigma) cancels values ~4096 times larger than its
// result, so one float32 rounding of sigma (torch's pow(x, 0.5) is not correctly rounded: its
// sigma_max is 4096, the correctly rounded sqrt(2^24 - 1) is 4095.99976) moves the result by
// ~2^-24 * 4096 / |x| ~ 1e-4 relative, in diffusers as in ours. The reference is no finer than that.
const TOLS: Record<string, number> = { euler_a_vpred_zsnr_trailing: 2e-4 };
const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' };
const STEPS = [1, 2, 7, 20];

// The option sets (as in the script's VARIANTS): file stem -> class and config beyond SD's betas.
export const OPTION_SETS: Record<string, [string, Record<string, unknown>]> = {
  euler_karras: ['EulerDiscreteScheduler', { use_karras_sigmas: true }],
  euler_log_linear: ['EulerDiscreteScheduler', { interpolation_type: 'log_linear' }],
  euler_continuous_vpred: ['EulerDiscreteScheduler', { timestep_type: 'continuous', prediction_type: 'v_prediction' }],
  euler_sigma_min_zsnr_trailing: ['EulerDiscreteScheduler', { final_sigmas_type: 'sigma_min', rescale_betas_zero_snr: true, timestep_spacing: 'trailing' }],
  dpm_order3: ['DPMSolverMultistepScheduler', { solver_order: 3 }],
  dpm_heun_lu_lambdas: ['DPMSolverMultistepScheduler', { solver_type: 'heun', use_lu_lambdas: true }],
  dpm_order3_sigma_min_euler_at_final: ['DPMSolverMultistepScheduler', { solver_order: 3, final_sigmas_type: 'sigma_min', lower_order_final: false, euler_at_final: true }],
  dpm_lambda_min_clipped_vpred: ['DPMSolverMultistepScheduler', { lambda_min_clipped: -2.5, prediction_type: 'v_prediction' }],
  unipc_order3: ['UniPCMultistepScheduler', { solver_order: 3 }],
  unipc_bh1_karras_sigma_min: ['UniPCMultistepScheduler', { solver_type: 'bh1', use_karras_sigmas: true, final_sigmas_type: 'sigma_min' }],
  unipc_noise_pred_sigma_min: ['UniPCMultistepScheduler', { predict_x0: false, final_sigmas_type: 'sigma_min', disable_corrector: [0, 1] }],
  ddim_cosine_sample_pred: ['DDIMScheduler', { beta_schedule: 'squaredcos_cap_v2', prediction_type: 'sample' }],
  ddim_linear_zsnr_trailing_vpred: ['DDIMScheduler', { beta_schedule: 'linear', rescale_betas_zero_snr: true, timestep_spacing: 'trailing', prediction_type: 'v_prediction' }],
  ddpm_sigmoid_fixed_small_log: ['DDPMScheduler', { beta_schedule: 'sigmoid', variance_type: 'fixed_small_log' }],
  ddpm_fixed_large_vpred: ['DDPMScheduler', { variance_type: 'fixed_large', prediction_type: 'v_prediction' }],
  pndm_vpred_linspace: ['PNDMScheduler', { skip_prk_steps: true, prediction_type: 'v_prediction', timestep_spacing: 'linspace' }],
  euler_a_vpred_zsnr_trailing: ['EulerAncestralDiscreteScheduler', { prediction_type: 'v_prediction', rescale_betas_zero_snr: true, timestep_spacing: 'trailing' }],
  flowmatch_shift1: ['FlowMatchEulerDiscreteScheduler', { shift: 1.0 }],
};

test('every option set has a reference at every step count, and nothing else is there', () => {
  const want = Object.keys(OPTION_SETS).flatMap((k) => STEPS.map((n) => `${k}_n${n}`)).sort();
  assert.deepEqual(fixtureNames(OPTIONS_DIR), want);
});

for (const [stem, [cls, extra]] of Object.entries(OPTION_SETS)) {
  const tol = TOLS[stem] ?? TOL;
  test(`${cls} ${JSON.stringify(extra)} matches diffusers within ${tol} at ${STEPS.join(', ')} steps`, () => {
    for (const n of STEPS) {
      const fx = openFixture(`${stem}_n${n}`, OPTIONS_DIR);
      assert.equal(fx.className, cls);
      assert.equal(fx.steps, n);
      // the reference was made from exactly this option set (diffusers' full config holds it)
      for (const [k, v] of Object.entries({ ...SD, ...extra })) {
        if (cls !== 'FlowMatchEulerDiscreteScheduler' || !(k in SD)) assert.deepEqual(fx.config[k], v, `${stem}_n${n}: ${k}`);
      }
      // run from our own config (SD's betas + the options), not the file's: what a user would pass
      const { scheduler, errors } = runTrajectory({ ...fx, config: { _class_name: cls, ...SD, ...extra } });
      assert.equal(scheduler.className, cls);
      const steps = errors.filter(([k]) => k.startsWith('x.')).length;
      assert.equal(steps, fx.get('timesteps').length, `${stem}_n${n}: one step per timestep`);
      assert.ok(fx.has(`x.${steps - 1}`) && !fx.has(`x.${steps}`), `${stem}_n${n}: every recorded step was compared`);
      const bad = errors.filter(([, e]) => !(e < tol));
      assert.deepEqual(bad, [], `${stem}_n${n}: relative L2 above ${tol}: ${bad.map(([k, e]) => `${k}=${e}`).join(', ')}`);
    }
  });
}

test('our config and the reference file\'s full config give the same scheduler', () => {
  for (const stem of Object.keys(OPTION_SETS)) {
    const fx = openFixture(`${stem}_n7`, OPTIONS_DIR);
    const a = createScheduler(fx.config);
    a.setTimesteps(7);
    const [cls, extra] = OPTION_SETS[stem]!;
    const b = createScheduler({ _class_name: cls, ...SD, ...extra });
    b.setTimesteps(7);
    assert.deepEqual(a.timesteps, b.timesteps, stem);
  }
});

// The references can fail: without any one of its options (back to the class default), each
// option set lands far from its reference, except where the option equals the default by construction.
const SAME_AS_DEFAULT: Record<string, string> = {
  'flowmatch_shift1 shift': 'shift 1.0 is the class default',
  'ddpm_sigmoid_fixed_small_log variance_type': 'exp(0.5 log v) = sqrt(v): fixed_small_log is the default fixed_small up to rounding',
};
test('every option in every set changes the trajectory: leaving one out fails the comparison', () => {
  const unchanged: string[] = [];
  for (const [stem, [cls, extra]] of Object.entries(OPTION_SETS)) {
    for (const key of Object.keys(extra)) {
      if (SAME_AS_DEFAULT[`${stem} ${key}`]) continue;
      const without = Object.fromEntries(Object.entries(extra).filter(([k]) => k !== key));
      // options the others need (PNDM's skip_prk_steps, sigma_min for UniPC's noise prediction) are refused when left out
      try {
        createScheduler({ _class_name: cls, ...SD, ...without });
      } catch (e) {
        assert.ok(e instanceof ConfigError, String(e));
        continue;
      }
      let worst = 0;
      for (const n of [7, 20]) {
        const fx = openFixture(`${stem}_n${n}`, OPTIONS_DIR);
        const { errors } = runTrajectory({ ...fx, config: { _class_name: cls, ...SD, ...without } });
        worst = Math.max(worst, ...errors.map(([, e]) => (Number.isNaN(e) ? Infinity : e)));
      }
      if (!(worst > 1e-3)) unchanged.push(`${stem} without ${key} (worst ${worst})`);
    }
  }
  assert.deepEqual(unchanged, [], 'these options are not exercised by their reference');
});
