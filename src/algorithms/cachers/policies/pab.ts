/**
 * Pyramid Attention Broadcast (arXiv 2408.12588): attention outputs are broadcast (reused) across
 * steps inside a timestep range, with a separate interval per attention kind — cross-attention
 * changes least, so it can be skipped most.
 *
 * Follows diffusers' PyramidAttentionBroadcastHook (huggingface/diffusers
 * src/diffusers/hooks/pyramid_attention_broadcast.py): per attention module, compute iff
 *   cache is None or iteration == 0 or not (lo < timestep < hi) or iteration % block_skip_range == 0
 * where `iteration` counts every call of that module since the reset, computed or not. Here
 * `iteration` counts the calls per (branch, kind). A kind whose skip range is null always
 * computes. Defaults are PyramidAttentionBroadcastConfig's: no skip range set means
 * spatial_attention_block_skip_range = 2 (what `apply_pyramid_attention_broadcast` falls back
 * to, and Pruna's `pab` interval default), timestep ranges (100, 800). Pruna uses (100, 950) for
 * spatial attention on FLUX. Temporal attention (video) is not modelled.
 */
import {
  BranchStates, advance, checkInt, checkRange, inRange,
  type CachePolicy, type Decision, type StepContext, type TimestepRange,
} from './types.js';

export type AttentionKind = 'spatial' | 'cross';

export interface PabConfig {
  /** self-attention: compute every N calls inside the range; null = never skip */
  spatialAttentionBlockSkipRange: number | null;
  spatialAttentionTimestepSkipRange: TimestepRange;
  /** cross-attention: compute every N calls inside the range; null = never skip */
  crossAttentionBlockSkipRange: number | null;
  crossAttentionTimestepSkipRange: TimestepRange;
}

export const PAB_DEFAULTS: Readonly<PabConfig> = Object.freeze({
  spatialAttentionBlockSkipRange: 2,
  spatialAttentionTimestepSkipRange: [100, 800] as const,
  crossAttentionBlockSkipRange: null,
  crossAttentionTimestepSkipRange: [100, 800] as const,
});

interface PabState {
  lastStep: number;
  iteration: number;
  hasCache: boolean;
}

export class PabPolicy implements CachePolicy {
  readonly name = 'pab';
  readonly config: Readonly<PabConfig>;
  readonly #states = new BranchStates<PabState>(() => ({ lastStep: -1, iteration: 0, hasCache: false }));

  constructor(config: Partial<PabConfig> = {}) {
    const c = { ...PAB_DEFAULTS, ...config };
    if (c.spatialAttentionBlockSkipRange !== null) checkInt(this.name, 'spatialAttentionBlockSkipRange', c.spatialAttentionBlockSkipRange, 1);
    if (c.crossAttentionBlockSkipRange !== null) checkInt(this.name, 'crossAttentionBlockSkipRange', c.crossAttentionBlockSkipRange, 1);
    c.spatialAttentionTimestepSkipRange = checkRange(this.name, 'spatialAttentionTimestepSkipRange', c.spatialAttentionTimestepSkipRange);
    c.crossAttentionTimestepSkipRange = checkRange(this.name, 'crossAttentionTimestepSkipRange', c.crossAttentionTimestepSkipRange);
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#states.clear();
  }

  /** Whether the attention outputs of `kind` are computed at this step on this branch. */
  decide(ctx: StepContext, kind: AttentionKind): Decision {
    const s = this.#states.get(ctx.branch, kind);
    advance(this.name, ctx, s);
    const [skip, range] = kind === 'spatial'
      ? [this.config.spatialAttentionBlockSkipRange, this.config.spatialAttentionTimestepSkipRange]
      : [this.config.crossAttentionBlockSkipRange, this.config.crossAttentionTimestepSkipRange];
    const compute = skip === null || !s.hasCache || s.iteration === 0 || !inRange(range, ctx.timestep) || s.iteration % skip === 0;
    s.hasCache = true;
    s.iteration++;
    return compute ? 'compute' : 'reuse';
  }
}
