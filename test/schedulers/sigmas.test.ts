// setTimesteps(n, { sigmas, mu }) as diffusers' set_timesteps(num_inference_steps, sigmas=..., mu=...).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.js';
import { SUPPORTED_SCHEDULERS, createScheduler } from '../../src/schedulers/index.js';
import { npLinspace } from '../../src/schedulers/common.js';

const flow = (extra: Record<string, unknown>) => createScheduler({ _class_name: 'FlowMatchEulerDiscreteScheduler', ...extra });

// References from diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps code path with numpy:
//   s = np.array(np.linspace(1, 1/n, n)).astype(np.float32)
//   dynamic: math.exp(mu) / (math.exp(mu) + (1 / s - 1) ** 1.0); static: shift * s / (1 + (shift - 1) * s)
//   timesteps = float32(s) * 1000
test('custom sigmas are cast to float32 and shifted as diffusers does (dynamic, the Flux pipeline\'s)', () => {
  const s = flow({ shift: 3, use_dynamic_shifting: true });
  s.setTimesteps(6, { sigmas: npLinspace(1, 1 / 6, 6), mu: 0.46749999999999997 });
  assert.deepEqual([...s.sigmas!], [1.0, 0.888641357421875, 0.7614502906799316, 0.6147918701171875, 0.4438263475894928, 0.24196474254131317, 0]);
  assert.deepEqual([...s.timesteps], [1000.0, 888.641357421875, 761.4503173828125, 614.7918701171875, 443.82635498046875, 241.96473693847656]);
});

test('custom sigmas with a static shift', () => {
  const s = flow({ shift: 3 });
  s.setTimesteps(4, { sigmas: npLinspace(1, 1 / 4, 4) });
  assert.deepEqual([...s.sigmas!], [1.0, 0.8999999761581421, 0.75, 0.5, 0]);
  assert.deepEqual([...s.timesteps], [1000, 900, 750, 500]);
});

test('without sigmas the scheduler\'s own schedule is unchanged, and differs from the Flux one', () => {
  const a = flow({ shift: 3 });
  a.setTimesteps(4);
  const b = flow({ shift: 3 });
  b.setTimesteps(4, { sigmas: npLinspace(1, 1 / 4, 4) });
  assert.equal(a.timesteps[0], 1000);
  assert.notDeepEqual([...a.timesteps], [...b.timesteps]);
});

test('sigmas of the wrong length, or on a scheduler without them, are ConfigErrors naming sigmas', () => {
  assert.throws(() => flow({}).setTimesteps(4, { sigmas: [1, 0.5] }), (e: unknown) => e instanceof ConfigError && e.key === 'sigmas' && /4/.test(e.message));
  assert.throws(() => flow({}).setTimesteps(2, { sigmas: [1, NaN] }), (e: unknown) => e instanceof ConfigError && e.key === 'sigmas');
  for (const cls of SUPPORTED_SCHEDULERS) {
    const s = createScheduler({ _class_name: cls, ...(cls.startsWith('FlowMatch') ? {} : { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, skip_prk_steps: true }) });
    if (s.acceptsSigmas) {
      assert.equal(cls, 'FlowMatchEulerDiscreteScheduler');
      continue;
    }
    assert.throws(() => s.setTimesteps(2, { sigmas: [1, 0.5] }), (e: unknown) => e instanceof ConfigError && e.code === 'SCHEDULER_SIGMAS_UNSUPPORTED' && e.key === 'sigmas', cls);
    s.setTimesteps(2, { mu: 0.5 }); // mu alone is ignored, as before
  }
});
