/**
 * TaylorSeer (arXiv 2503.06923): like FORA, the cut tensors are computed on some steps only, but
 * on the others they are forecast by a Taylor expansion whose derivatives are finite differences
 * over the last full steps, instead of reused as they are. Order 0 is plain reuse.
 *
 * Follows diffusers' hooks/taylorseer_cache.py (Pruna's own TaylorSeer is not public):
 * - schedule (TaylorSeerCacheHook._measure_should_compute): compute iff
 *   step < disable_cache_before_step, or (step − disable_cache_before_step − 1) % cache_interval
 *   == 0 (Python modulo), or step >= disable_cache_after_step; named here `startStep`,
 *   `interval`, `stopStep`. With the defaults (interval 5, startStep 3) steps 0, 1, 2, 4, 9, 14…
 *   compute.
 * - factors (TaylorSeerState.update): on each full step, factor 0 is the output and factor j+1 =
 *   (factor j − previous factor j) / (step − previous full step), up to `order` (max_order) and
 *   as far as the previous step had factors;
 * - forecast (TaylorSeerState.predict): Σ_k factor_k · offset^k / k!, offset = step − last full
 *   step. Factors are kept in float32 here (the reference defaults to bfloat16).
 */
import { CompatibilityError, ConfigError } from '../../../errors.js';
import {
  BranchStates, advance, checkInt, pyMod, type CachePolicy, type Decision, type StepContext, type StepTrack,
} from './types.js';

export interface TaylorSeerConfig {
  /** one full step every `interval` steps once caching has started */
  interval: number;
  /** steps before this are always computed (diffusers' disable_cache_before_step) */
  startStep: number;
  /** steps from this on are always computed; null = never (diffusers' disable_cache_after_step) */
  stopStep: number | null;
  /** highest Taylor order (diffusers' max_order); 0 = reuse the last full output */
  order: number;
}

export const TAYLORSEER_DEFAULTS: Readonly<TaylorSeerConfig> = Object.freeze({ interval: 5, startStep: 3, stopStep: null, order: 1 });

/** diffusers' schedule: `true` = full step. */
export function taylorSeerSchedule(numSteps: number, config: TaylorSeerConfig): boolean[] {
  const { interval, startStep, stopStep } = config;
  return Array.from({ length: numSteps }, (_, i) =>
    i < startStep || pyMod(i - startStep - 1, interval) === 0 || (stopStep !== null && i >= stopStep));
}

export class TaylorSeerPolicy implements CachePolicy {
  readonly name = 'taylorseer';
  readonly config: Readonly<TaylorSeerConfig>;
  readonly #branches = new BranchStates<StepTrack>(() => ({ lastStep: -1 }));

  constructor(config: Partial<TaylorSeerConfig> = {}) {
    const c = { ...TAYLORSEER_DEFAULTS, ...config };
    checkInt(this.name, 'interval', c.interval, 1);
    checkInt(this.name, 'startStep', c.startStep, 0);
    if (c.stopStep !== null) checkInt(this.name, 'stopStep', c.stopStep, 0);
    checkInt(this.name, 'order', c.order, 0);
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#branches.clear();
  }

  /** 'compute' = run and `TaylorFactors.update`; 'reuse' = `TaylorFactors.predict`. */
  decide(ctx: StepContext): Decision {
    const s = this.#branches.get(ctx.branch);
    const first = s.lastStep < 0;
    advance(this.name, ctx, s);
    const { interval, startStep, stopStep } = this.config;
    const i = ctx.step;
    const compute = first || i < startStep || pyMod(i - startStep - 1, interval) === 0 || (stopStep !== null && i >= stopStep);
    return compute ? 'compute' : 'reuse';
  }

  /** A fresh factor store for one cut tensor of one branch, at this policy's order. */
  factors(): TaylorFactors {
    return new TaylorFactors(this.config.order);
  }
}

/** The divided-difference factors of one cut tensor (one per cut tensor and branch). */
export class TaylorFactors {
  #factors: Float32Array[] = [];
  #lastStep: number | undefined;

  constructor(readonly order: number) {
    checkInt('taylorseer', 'order', order, 0);
  }

  /** Records the output of a full step. */
  update(step: number, output: Float32Array): void {
    const next: Float32Array[] = [Float32Array.from(output)];
    if (this.#lastStep !== undefined) {
      const delta = step - this.#lastStep;
      if (delta <= 0) {
        throw new ConfigError('CACHE_STEP_ORDER', `taylorseer: full step ${step} recorded after step ${this.#lastStep} — reset between generations`, 'step');
      }
      const prev = this.#factors;
      if (prev[0]!.length !== output.length) {
        throw new CompatibilityError('CACHE_SHAPE', `taylorseer: output of ${output.length} elements after ${prev[0]!.length} — the shape changed without reset()`);
      }
      for (let j = 0; j < this.order && j < prev.length; j++) {
        const a = next[j]!;
        const b = prev[j]!;
        const d = new Float32Array(a.length);
        for (let k = 0; k < a.length; k++) d[k] = (a[k]! - b[k]!) / delta;
        next.push(d);
      }
    }
    this.#factors = next;
    this.#lastStep = step;
  }

  /** The forecast at `step`: Σ_k factor_k · (step − last full step)^k / k!. */
  predict(step: number): Float32Array {
    if (this.#lastStep === undefined) {
      throw new ConfigError('CACHE_STEP_ORDER', 'taylorseer: no full step recorded yet — the first step must compute', 'step');
    }
    const offset = step - this.#lastStep;
    const out = new Float32Array(this.#factors[0]!.length);
    let fact = 1;
    this.#factors.forEach((f, k) => {
      if (k > 0) fact *= k;
      const coeff = offset ** k / fact;
      for (let i = 0; i < out.length; i++) out[i] = out[i]! + f[i]! * coeff;
    });
    return out;
  }

  /** number of factors held: min(order, full steps so far − 1) + 1 */
  get size(): number {
    return this.#factors.length;
  }
}

/**
 * The forecast from a history of full steps, oldest first: replays `update` over the last
 * `order + 1` entries (older ones cannot change the factors) and predicts at `step`.
 */
export function taylorExtrapolate(history: readonly { step: number; output: Float32Array }[], order: number, step: number): Float32Array {
  const f = new TaylorFactors(order);
  for (const h of history.slice(-(order + 1))) f.update(h.step, h.output);
  return f.predict(step);
}
