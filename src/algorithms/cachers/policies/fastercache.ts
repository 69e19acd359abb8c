/**
 * FasterCache (arXiv 2410.19355): two schedules.
 * - Attention reuse: self-attention outputs are approximated on skipped steps by linear
 *   extrapolation of the last two outputs, `t1 + (t1 − t2) · weight` (weight 0.5 by default).
 * - CFG-cache: on skipped steps only the conditional half runs, and the unconditional output is
 *   rebuilt from the conditional one plus the low/high-frequency deltas stored on the last step
 *   that ran both halves, each delta scaled by its weight (1.1 inside its timestep range, else 1)
 *   on every skipped step — cumulatively, as the reference multiplies the stored delta in place.
 *
 * Follows diffusers' hooks/faster_cache.py:
 * - FasterCacheDenoiserHook: skip the unconditional branch iff iteration > 0 and
 *   lo < timestep < hi (unconditional_batch_timestep_skip_range) and
 *   iteration % unconditional_batch_skip_range != 0 and the model is not guidance-distilled;
 *   `iteration` counts denoiser calls.
 * - FasterCacheBlockHook: outside spatial_attention_timestep_skip_range compute; inside, compute
 *   iff iteration > 0 and iteration % spatial_attention_block_skip_range == 0; a skip only happens
 *   when the model is guidance-distilled or the unconditional half was skipped this step (the
 *   cache holds conditional outputs only). The cache is [t2, t1] of the last two outputs, computed
 *   or approximated, [out, out] after the first.
 * - weights: low_frequency_weight_update_timestep_range / high_… ranges with alpha 1.1.
 * Defaults are FasterCacheConfig's. Pruna's `fastercache` for FLUX sets the spatial range to
 * (-1, 961) and is_guidance_distilled. The FFT low/high split itself is tensor work for the
 * denoiser wrapper, not part of the policy.
 */
import { CompatibilityError } from '../../../errors.js';
import {
  BranchStates, advance, checkInt, checkNumber, checkRange, inRange,
  type CachePolicy, type Decision, type StepContext, type StepTrack, type TimestepRange,
} from './types.js';

export interface FasterCacheConfig {
  spatialAttentionBlockSkipRange: number;
  spatialAttentionTimestepSkipRange: TimestepRange;
  lowFrequencyWeightUpdateTimestepRange: TimestepRange;
  highFrequencyWeightUpdateTimestepRange: TimestepRange;
  alphaLowFrequency: number;
  alphaHighFrequency: number;
  unconditionalBatchSkipRange: number;
  unconditionalBatchTimestepSkipRange: TimestepRange;
  /** the weight of the extrapolation `t1 + (t1 − t2)·w` (diffusers' attention_weight_callback default) */
  attentionWeight: number;
  /** no unconditional branch (FLUX): attention may be skipped on any step, CFG-cache is off */
  isGuidanceDistilled: boolean;
}

export const FASTERCACHE_DEFAULTS: Readonly<FasterCacheConfig> = Object.freeze({
  spatialAttentionBlockSkipRange: 2,
  spatialAttentionTimestepSkipRange: [-1, 681] as const,
  lowFrequencyWeightUpdateTimestepRange: [99, 901] as const,
  highFrequencyWeightUpdateTimestepRange: [-1, 301] as const,
  alphaLowFrequency: 1.1,
  alphaHighFrequency: 1.1,
  unconditionalBatchSkipRange: 5,
  unconditionalBatchTimestepSkipRange: [-1, 641] as const,
  attentionWeight: 0.5,
  isGuidanceDistilled: false,
});

interface IterState extends StepTrack {
  iteration: number;
}

export class FasterCachePolicy implements CachePolicy {
  readonly name = 'fastercache';
  readonly config: Readonly<FasterCacheConfig>;
  readonly #attention = new BranchStates<IterState>(() => ({ lastStep: -1, iteration: 0 }));
  /** the CFG-cache concerns the pair of branches; its counter is the denoiser's */
  #denoiser: IterState = { lastStep: -1, iteration: 0 };

  constructor(config: Partial<FasterCacheConfig> = {}) {
    const c = { ...FASTERCACHE_DEFAULTS, ...config };
    checkInt(this.name, 'spatialAttentionBlockSkipRange', c.spatialAttentionBlockSkipRange, 1);
    checkInt(this.name, 'unconditionalBatchSkipRange', c.unconditionalBatchSkipRange, 1);
    for (const k of ['spatialAttentionTimestepSkipRange', 'lowFrequencyWeightUpdateTimestepRange', 'highFrequencyWeightUpdateTimestepRange', 'unconditionalBatchTimestepSkipRange'] as const) {
      c[k] = checkRange(this.name, k, c[k]);
    }
    checkNumber(this.name, 'alphaLowFrequency', c.alphaLowFrequency);
    checkNumber(this.name, 'alphaHighFrequency', c.alphaHighFrequency);
    checkNumber(this.name, 'attentionWeight', c.attentionWeight);
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#attention.clear();
    this.#denoiser = { lastStep: -1, iteration: 0 };
  }

  /**
   * CFG-cache, asked once per step before the denoiser runs: 'reuse' = run only the conditional
   * half and rebuild the unconditional output from the stored frequency deltas; 'compute' = run
   * both and store new deltas. Always 'compute' for guidance-distilled models.
   */
  decideUnconditional(ctx: Omit<StepContext, 'branch'>): Decision {
    const s = this.#denoiser;
    advance(this.name, { ...ctx, branch: 'cfg' }, s);
    const c = this.config;
    const skip = s.iteration > 0 && inRange(c.unconditionalBatchTimestepSkipRange, ctx.timestep) &&
      s.iteration % c.unconditionalBatchSkipRange !== 0 && !c.isGuidanceDistilled;
    s.iteration++;
    return skip ? 'reuse' : 'compute';
  }

  /** The factors the stored low/high-frequency deltas are multiplied by on a skipped step. */
  frequencyWeights(timestep: number): { low: number; high: number } {
    const c = this.config;
    return {
      low: inRange(c.lowFrequencyWeightUpdateTimestepRange, timestep) ? c.alphaLowFrequency : 1,
      high: inRange(c.highFrequencyWeightUpdateTimestepRange, timestep) ? c.alphaHighFrequency : 1,
    };
  }

  /**
   * Self-attention reuse for the call of `ctx.branch`: 'reuse' = extrapolate with
   * `extrapolateAttention`. `unconditionalSkipped` is this step's `decideUnconditional` answer
   * was 'reuse' (only the conditional half runs).
   */
  decideAttention(ctx: StepContext, unconditionalSkipped: boolean): Decision {
    const s = this.#attention.get(ctx.branch);
    advance(this.name, ctx, s);
    const c = this.config;
    let skip = false;
    if (inRange(c.spatialAttentionTimestepSkipRange, ctx.timestep)) {
      skip = !(s.iteration > 0 && s.iteration % c.spatialAttentionBlockSkipRange === 0);
    }
    // the cache holds conditional outputs only; the first call has nothing to extrapolate from
    if (skip) skip = s.iteration > 0 && (c.isGuidanceDistilled || (unconditionalSkipped && ctx.branch !== 'uncond'));
    s.iteration++;
    return skip ? 'reuse' : 'compute';
  }
}

/**
 * FasterCache's attention approximation `t1 + (t1 − t2) · weight`, where t1 is the last output
 * and t2 the one before (both possibly approximations themselves).
 */
export function extrapolateAttention(t2: Float32Array, t1: Float32Array, weight: number): Float32Array {
  if (t2.length !== t1.length) {
    throw new CompatibilityError('CACHE_SHAPE', `fastercache: kept attention outputs differ in size (${t2.length} vs ${t1.length})`);
  }
  const out = new Float32Array(t1.length);
  for (let i = 0; i < t1.length; i++) out[i] = t1[i]! + (t1[i]! - t2[i]!) * weight;
  return out;
}
