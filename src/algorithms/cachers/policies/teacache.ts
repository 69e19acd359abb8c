/**
 * TeaCache (arXiv 2411.19108) for FLUX: the relative L1 change of block 0's modulated input
 * (`transformer_blocks[0].norm1(hidden_states, emb=temb)[0]`) between consecutive steps, rescaled
 * by a fitted polynomial, is accumulated; while the sum stays below the threshold the blocks are
 * skipped and the kept residual (output − input of all blocks) added instead.
 *
 * Follows ali-vilab/TeaCache TeaCache4FLUX/teacache_flux.py `teacache_forward`:
 *   first step (cnt == 0) or last step (cnt == num_steps − 1): compute, accumulation = 0;
 *   otherwise accumulation += poly(mean|x − x_prev| / mean|x_prev|), with np.poly1d of
 *   [4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01]
 *   (highest power first); reuse iff accumulation < threshold, else compute and accumulation = 0;
 *   x_prev = x on every step, computed or not.
 * Default threshold 0.6, the value that script sets (its comment: 0.25 ≈ 1.5×, 0.4 ≈ 1.8×,
 * 0.6 ≈ 2.0×, 0.8 ≈ 2.25× speed-up). Here `cnt` is the context's step, so the first and last
 * step are the first and last model calls; one state per guidance branch.
 */
import { ConfigError } from '../../../errors.js';
import { relativeL1 } from './rel-l1.js';
import {
  BranchStates, advance, checkNumber, type CachePolicy, type Decision, type GuidanceBranch, type StepContext, type StepTrack,
} from './types.js';

export interface TeaCacheConfig {
  threshold: number;
  /** rescale polynomial, highest power first (np.poly1d order) */
  coefficients: readonly number[];
}

/** TeaCache4FLUX's fitted rescale polynomial. */
export const TEACACHE_FLUX_COEFFICIENTS: readonly number[] = Object.freeze([4.98651651e+2, -2.83781631e+2, 5.58554382e+1, -3.82021401e+0, 2.64230861e-1]);

export const TEACACHE_DEFAULTS: Readonly<TeaCacheConfig> = Object.freeze({ threshold: 0.6, coefficients: TEACACHE_FLUX_COEFFICIENTS });

/** np.poly1d evaluation (Horner, highest power first). */
export function polyval(coefficients: readonly number[], x: number): number {
  let y = 0;
  for (const c of coefficients) y = y * x + c;
  return y;
}

interface TeaState extends StepTrack {
  previous: Float32Array | undefined;
  accumulated: number;
  lastDistance: number | undefined;
}

export class TeaCachePolicy implements CachePolicy {
  readonly name = 'teacache';
  readonly config: Readonly<TeaCacheConfig>;
  readonly #branches = new BranchStates<TeaState>(() => ({ lastStep: -1, previous: undefined, accumulated: 0, lastDistance: undefined }));

  constructor(config: Partial<TeaCacheConfig> = {}) {
    const c = { ...TEACACHE_DEFAULTS, ...config };
    checkNumber(this.name, 'threshold', c.threshold, 0);
    if (!Array.isArray(c.coefficients) || c.coefficients.length === 0 || !c.coefficients.every((x) => Number.isFinite(x))) {
      throw new ConfigError('CACHE_CONFIG', 'teacache: coefficients must be a non-empty list of finite numbers', 'coefficients');
    }
    this.config = Object.freeze({ threshold: c.threshold, coefficients: Object.freeze([...c.coefficients]) });
  }

  reset(): void {
    this.#branches.clear();
  }

  /** `modulatedInput`: block 0's modulated input at this step (kept, copied, as the next step's reference). */
  decide(ctx: StepContext, modulatedInput: Float32Array): Decision {
    const s = this.#branches.get(ctx.branch);
    advance(this.name, ctx, s);
    const distance = s.previous === undefined ? undefined : relativeL1(modulatedInput, s.previous, 'the modulated input');
    s.previous = Float32Array.from(modulatedInput);
    return this.#accumulate(ctx, s, distance);
  }

  /**
   * The same decision from a precomputed relative L1 distance to the previous step's input
   * (undefined on the branch's first step) — for callers that measure it themselves.
   */
  decideDistance(ctx: StepContext, distance: number | undefined): Decision {
    const s = this.#branches.get(ctx.branch);
    advance(this.name, ctx, s);
    return this.#accumulate(ctx, s, distance);
  }

  #accumulate(ctx: StepContext, s: TeaState, distance: number | undefined): Decision {
    s.lastDistance = distance;
    if (distance === undefined || ctx.step === 0 || ctx.step === ctx.numSteps - 1) {
      s.accumulated = 0;
      return 'compute';
    }
    s.accumulated += polyval(this.config.coefficients, distance);
    if (s.accumulated < this.config.threshold) return 'reuse';
    s.accumulated = 0;
    return 'compute';
  }

  /** The raw relative L1 distance measured by the last decision on `branch`. */
  lastDistance(branch: GuidanceBranch): number | undefined {
    return this.#branches.get(branch).lastDistance;
  }

  /** The accumulated rescaled distance on `branch` after the last decision. */
  accumulated(branch: GuidanceBranch): number {
    return this.#branches.get(branch).accumulated;
  }
}
