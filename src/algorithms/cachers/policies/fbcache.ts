/**
 * First-block cache (ParaAttention's FBCache, in diffusers as hooks/first_block_cache.py): run the
 * first transformer block; if its residual (output − input) barely changed, add the kept residual
 * of the remaining blocks instead of running them.
 *
 * Follows diffusers' FBCHeadBlockHook._should_compute_remaining_blocks exactly:
 *   no kept residual → compute;
 *   diff = mean|r − r_kept| / mean|r_kept|;  compute iff diff > threshold
 * (so diff == threshold reuses, and a NaN diff — both residuals zero — reuses too, as there).
 * The kept residual is replaced only on computed steps: the comparison is always against the
 * last fully computed step, not the previous step. One state per cache context (branch).
 * Default threshold 0.05 (FirstBlockCacheConfig); 0.08 is suggested for FLUX.
 */
import { relativeL1 } from './rel-l1.js';
import {
  BranchStates, advance, checkNumber, type CachePolicy, type Decision, type GuidanceBranch, type StepContext, type StepTrack,
} from './types.js';

export interface FbCacheConfig {
  threshold: number;
}

export const FBCACHE_DEFAULTS: Readonly<FbCacheConfig> = Object.freeze({ threshold: 0.05 });

interface FbState extends StepTrack {
  /** the first block's residual at the last fully computed step */
  kept: Float32Array | undefined;
  lastDistance: number | undefined;
}

export class FbCachePolicy implements CachePolicy {
  readonly name = 'fbcache';
  readonly config: Readonly<FbCacheConfig>;
  readonly #branches = new BranchStates<FbState>(() => ({ lastStep: -1, kept: undefined, lastDistance: undefined }));

  constructor(config: Partial<FbCacheConfig> = {}) {
    const c = { ...FBCACHE_DEFAULTS, ...config };
    checkNumber(this.name, 'threshold', c.threshold, 0);
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#branches.clear();
  }

  /**
   * `firstBlockResidual`: the first block's hidden-states output minus its input at this step.
   * On 'compute' it becomes the kept reference (copied); on 'reuse' the remaining blocks' kept
   * residual is added instead of running them.
   */
  decide(ctx: StepContext, firstBlockResidual: Float32Array): Decision {
    const s = this.#branches.get(ctx.branch);
    advance(this.name, ctx, s);
    let compute = true;
    s.lastDistance = undefined;
    if (s.kept !== undefined) {
      const diff = relativeL1(firstBlockResidual, s.kept, 'the first block residual');
      s.lastDistance = diff;
      compute = diff > this.config.threshold;
    }
    if (compute) s.kept = Float32Array.from(firstBlockResidual);
    return compute ? 'compute' : 'reuse';
  }

  /**
   * The same decision from a distance measured elsewhere (the graph measures it, adaptive.ts):
   * undefined when there is no kept residual yet. Keeps no residual itself.
   */
  decideDistance(ctx: StepContext, distance: number | undefined): Decision {
    const s = this.#branches.get(ctx.branch);
    advance(this.name, ctx, s);
    s.lastDistance = distance;
    return distance === undefined || distance > this.config.threshold ? 'compute' : 'reuse';
  }

  /** The relative L1 change measured by the last decision on `branch` (undefined when none was). */
  lastDistance(branch: GuidanceBranch): number | undefined {
    return this.#branches.get(branch).lastDistance;
  }
}
