/**
 * What first-block caching and TeaCache share: the decision depends on a signal the same call
 * computes (block 0's residual, block 0's modulated input), so the graph decides, with the rule
 * of the policy (policies/fbcache.ts, policies/teacache.ts), before the If over the remaining
 * blocks; the wrapper feeds the kept signal, the threshold and the state, and reads back whether
 * the call computed. One call per step: block 0 never runs twice.
 *
 * Graph contract: inputs `cache.force` (bool: compute regardless), `cache.threshold`,
 * `cache.signal_in` (the kept signal), `cache.acc` (TeaCache's accumulated distance); outputs
 * `cache.computed` (bool), `cache.distance` (the relative L1 change), `cache.signal` (this
 * call's signal), `cache.acc_out`.
 */
import type { DenoiseContext, Denoiser, DenoiserFeeds, Prediction, PredictRequest } from '../../pipelines/denoiser.js';
import type { Feed, HostTensor } from '../../runtime/session.js';
import { CacheDenoiser, boolFeed, f32Scalar, type KeptState } from './wrapper.js';

export const SIGNAL = { force: 'cache.force', threshold: 'cache.threshold', signalIn: 'cache.signal_in', acc: 'cache.acc', computed: 'cache.computed', distance: 'cache.distance', signal: 'cache.signal', accOut: 'cache.acc_out' } as const;

interface AdaptiveState extends KeptState {
  signal?: Feed;
  acc: number;
}

const scalar = (t: Feed | undefined): number => Number((t as HostTensor).data[0]);

export class AdaptiveCache extends CacheDenoiser<AdaptiveState> {
  /**
   * `mode` 'fbcache': the signal is kept from computed steps only (compared with the last full
   * step); 'teacache': kept every step, distances accumulated, first and last step computed.
   */
  constructor(inner: Denoiser, readonly mode: 'fbcache' | 'teacache', readonly threshold: number, rank: number) {
    super(inner, mode, rank);
  }
  protected resetPolicy(): void {}
  protected override initialState(): AdaptiveState {
    return { kept: new Map(), acc: 0 };
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const t0 = performance.now();
    const s = this.state(ctx);
    const first = s.signal === undefined;
    const tea = this.mode === 'teacache';
    const force = first || (tea && (ctx.stepIndex === 0 || ctx.stepIndex === ctx.numSteps - 1));
    const extra: DenoiserFeeds = {
      ...this.keptFeeds(s),
      [SIGNAL.force]: boolFeed(force),
      [SIGNAL.threshold]: f32Scalar(this.threshold),
      [SIGNAL.signalIn]: s.signal ?? this.placeholder(),
      ...(tea ? { [SIGNAL.acc]: f32Scalar(s.acc) } : {}),
    };
    const cuts = this.cutOutputs();
    const outs = [...cuts, SIGNAL.computed, SIGNAL.distance, SIGNAL.signal, ...(tea ? [SIGNAL.accOut] : [])];
    const { r, all } = await this.call(feeds, ctx, request, extra, outs, [...cuts, SIGNAL.signal]);
    const computed = scalar(all[SIGNAL.computed]) !== 0;
    if (computed) this.keepCuts(s, all);
    if (computed || tea) s.signal = all[SIGNAL.signal];
    if (tea) s.acc = scalar(all[SIGNAL.accOut]);
    this.record(ctx, computed, performance.now() - t0, first ? undefined : scalar(all[SIGNAL.distance]));
    return r;
  }
}
