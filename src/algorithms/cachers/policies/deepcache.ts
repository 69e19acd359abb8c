/**
 * DeepCache (arXiv 2312.00858): the deep UNet features are computed on "slow" steps and reused on
 * the steps in between, where only the shallow path runs.
 *
 * Schedules, following horseee/DeepCache:
 * - uniform (the default, and what Pruna's `deepcache` runs through `DeepCacheSDHelper` in
 *   DeepCache/extension/deepcache.py): compute iff `step % interval == 0`
 *   (`(cur_timestep - start_timestep) % cache_interval == 0`, the first step being 0);
 * - non-uniform (DeepCache/sd/pipeline_stable_diffusion.py, `uniform=False`): the slow steps are
 *   `sample_from_quad_center(num_steps, ceil(num_steps / interval), center, pow)`, denser around
 *   `center`; `pow` starts at the given value and drops by 0.02 until the sample has the wanted
 *   size. The reference evaluates `(-center) ** (1 / pow)` in Python, which is complex, and numpy
 *   then keeps the real part of the complex power; `quadCenterSample` reproduces that arithmetic
 *   (checked against numpy 2.4 in test/algorithms/cachers/deepcache.test.ts).
 * `interval` 1 computes every step in both modes (`interval_seq = range(num_inference_steps)`).
 * Pruna: interval default 2, range 1–5. The reference takes `num_inference_steps`; here it is
 * the context's `numSteps` (model calls).
 */
import { ConfigError } from '../../../errors.js';
import {
  BranchStates, advance, checkInt, checkNumber, type CachePolicy, type Decision, type StepContext, type StepTrack,
} from './types.js';

export interface DeepCacheConfig {
  /** one slow (full) step every `interval` steps; 1 = always compute */
  interval: number;
  /** uniform schedule (default) or DeepCache's non-uniform quadratic one around `center` */
  uniform: boolean;
  /** non-uniform only: the step around which slow steps are densest (required then) */
  center?: number;
  /** non-uniform only: the starting power of `sample_from_quad_center` (its default 1.2) */
  pow: number;
}

export const DEEPCACHE_DEFAULTS: Readonly<DeepCacheConfig> = Object.freeze({ interval: 2, uniform: true, pow: 1.2 });

// ---- complex arithmetic as CPython (`_Py_c_pow`), numpy (`linspace`, complex division, `nc_pow`)
// and glibc (`cpow` = cexp(b·clog(a))) do it, down to the real part numpy keeps.
type C = readonly [re: number, im: number];

/** Python `x ** y` for a real base and a non-integer real exponent (complex when x < 0). */
function pyPow(x: number, y: number): C {
  if (x >= 0) return [Math.pow(x, y), 0];
  const len = Math.pow(Math.hypot(x, 0), y);
  const phase = Math.atan2(0, x) * y;
  return [len * Math.cos(phase), len * Math.sin(phase)];
}

/** glibc `clog` real part (its branches matter for the last bit). */
function clogRe(re: number, im: number): number {
  let ax = Math.abs(re);
  let ay = Math.abs(im);
  if (ax < ay) [ax, ay] = [ay, ax];
  const EPS = 2 ** -52;
  if (ax === 1) return Math.log1p(ay * ay) / 2;
  if (ax > 1 && ax < 2 && ay < 1) {
    let d2m1 = (ax - 1) * (ax + 1);
    if (ay >= EPS) d2m1 += ay * ay;
    return Math.log1p(d2m1) / 2;
  }
  if (ax < 1 && ax >= 0.5 && ay < EPS / 2) return Math.log1p((ax - 1) * (ax + 1)) / 2;
  if (ax < 1 && ax >= 0.5 && ax * ax + ay * ay >= 0.5) return Math.log1p((ax - 1) * (ax + 1) + ay * ay) / 2;
  return Math.log(Math.hypot(ax, ay));
}

function cmul(a: C, b: C): C {
  return [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
}

/**
 * Real part of numpy's complex `z ** p` for real p: small integer powers by repeated
 * multiplication (numpy's `nc_pow`), otherwise glibc's cpow, Re exp(p·log z).
 */
function cpowRe(z: C, p: number): number {
  if (p === 0) return 1;
  if (z[0] === 0 && z[1] === 0) return p > 0 ? 0 : NaN;
  if (Number.isInteger(p) && p > -100 && p < 100) {
    let n = Math.abs(p);
    let acc: C = [1, 0];
    let base: C = z;
    for (;;) {
      if (n & 1) acc = cmul(acc, base);
      n >>= 1;
      if (n === 0) break;
      base = cmul(base, base);
    }
    return p < 0 ? acc[0] / (acc[0] * acc[0] + acc[1] * acc[1]) : acc[0];
  }
  const lr = clogRe(z[0], z[1]);
  const li = Math.atan2(z[1], z[0]);
  return Math.exp(p * lr) * Math.cos(p * li);
}

/** numpy.linspace(start, stop, num); complex when either end point is. */
function linspace(start: C, stop: C, num: number, complex: boolean): C[] {
  const div = num - 1;
  const out: C[] = [];
  if (!complex) {
    const step = (stop[0] - start[0]) / div;
    for (let i = 0; i < num; i++) out.push([i * step + start[0], 0]);
  } else {
    const inv = 1 / div; // numpy divides a complex by (div + 0j): (re·(1/div), im·(1/div))
    const step: C = [(stop[0] - start[0]) * inv, (stop[1] - start[1]) * inv];
    for (let i = 0; i < num; i++) out.push([i * step[0] + start[0], i * step[1] + start[1]]);
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

/**
 * DeepCache's `sample_from_quad_center(total_numbers, n_samples, center, pow)`: the slow steps
 * (0 always first) and the power it settled on. Throws when no power above 1 fits, as the
 * reference does.
 */
export function quadCenterSample(totalNumbers: number, nSamples: number, center: number, pow: number): { indices: number[]; pow: number } {
  let p = pow;
  while (p > 1) {
    const start = pyPow(-center, 1 / p);
    const stop = pyPow(totalNumbers - center, 1 / p);
    const complex = start[1] !== 0 || stop[1] !== 0;
    const xs = linspace(start, stop, nSamples + 1, complex);
    // np.int32 keeps the real part and truncates toward zero; np.unique sorts
    const values = xs.map((z) => (complex ? cpowRe(z, p) : Math.pow(z[0], p)));
    const ints = [...new Set(values.map((v) => Math.trunc(v)))].sort((a, b) => a - b);
    const indices = [0, ...ints.slice(1, -1).map((x) => x + center)];
    if (indices.length === nSamples) return { indices, pow: p };
    p -= 0.02;
  }
  throw new ConfigError(
    'CACHE_CONFIG',
    `deepcache: no power > 1 gives ${nSamples} slow steps out of ${totalNumbers} around center ${center} — lower the interval or move the center`,
    'center',
  );
}

/** The schedule: `true` = slow (full) step. */
export function deepCacheSchedule(numSteps: number, config: DeepCacheConfig): boolean[] {
  const { interval } = config;
  if (interval === 1) return new Array<boolean>(numSteps).fill(true);
  if (config.uniform) return Array.from({ length: numSteps }, (_, i) => i % interval === 0);
  const slow = Math.ceil(numSteps / interval);
  const { indices } = quadCenterSample(numSteps, slow, config.center!, config.pow);
  const set = new Set(indices);
  return Array.from({ length: numSteps }, (_, i) => set.has(i));
}

export class DeepCachePolicy implements CachePolicy {
  readonly name = 'deepcache';
  readonly config: Readonly<DeepCacheConfig>;
  readonly #branches = new BranchStates<StepTrack>(() => ({ lastStep: -1 }));
  /** schedules by step count (the non-uniform one costs a search) */
  readonly #schedules = new Map<number, boolean[]>();

  constructor(config: Partial<DeepCacheConfig> = {}) {
    const c = { ...DEEPCACHE_DEFAULTS, ...config };
    checkInt(this.name, 'interval', c.interval, 1);
    if (typeof c.uniform !== 'boolean') throw new ConfigError('CACHE_CONFIG', 'deepcache: uniform must be a boolean', 'uniform');
    if (!c.uniform) {
      if (c.center === undefined) {
        throw new ConfigError('CACHE_CONFIG', 'deepcache: the non-uniform schedule needs a center step', 'center');
      }
      checkInt(this.name, 'center', c.center, 0);
      checkNumber(this.name, 'pow', c.pow);
      if (c.pow <= 1) throw new ConfigError('CACHE_CONFIG', `deepcache: pow must be > 1, got ${c.pow}`, 'pow');
    }
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#branches.clear();
  }

  /** `true` = slow (full) step; memoized per step count. */
  schedule(numSteps: number): boolean[] {
    let s = this.#schedules.get(numSteps);
    if (!s) {
      s = deepCacheSchedule(numSteps, this.config);
      this.#schedules.set(numSteps, s);
    }
    return s;
  }

  decide(ctx: StepContext): Decision {
    const s = this.#branches.get(ctx.branch);
    const first = s.lastStep < 0;
    advance(this.name, ctx, s);
    const slow = this.schedule(ctx.numSteps)[ctx.step]!; // built (and checked) on the first step
    return first || slow ? 'compute' : 'reuse';
  }
}
