/**
 * FORA (Fast-Forward Caching, arXiv 2407.01425): the outputs of every transformer block are
 * computed on the first `startStep` steps, then once every `interval` steps, and reused in between.
 *
 * Follows Pruna's `CacheHelper.get_cache_schedule` (PrunaAI/pruna src/pruna/algorithms/fora.py,
 * formerly algorithms/caching/fora.py): compute iff `step < startStep` or
 * `(step - startStep) % interval == 0`; the cache key there is (layer, call index within the
 * step), i.e. one cache per guidance branch, as here. Defaults are Pruna's: interval 2 (1–5),
 * start_step 2 (0–10).
 */
import {
  BranchStates, advance, checkInt, type CachePolicy, type Decision, type StepContext, type StepTrack,
} from './types.js';

export interface ForaConfig {
  /** compute every `interval` steps once caching has started (1 = always compute) */
  interval: number;
  /** steps computed in full before caching starts */
  startStep: number;
}

export const FORA_DEFAULTS: Readonly<ForaConfig> = Object.freeze({ interval: 2, startStep: 2 });

/** Pruna's schedule: `true` = compute at that step. */
export function foraSchedule(numSteps: number, config: ForaConfig): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < numSteps; i++) out.push(i < config.startStep || (i - config.startStep) % config.interval === 0);
  return out;
}

export class ForaPolicy implements CachePolicy {
  readonly name = 'fora';
  readonly config: Readonly<ForaConfig>;
  readonly #branches = new BranchStates<StepTrack>(() => ({ lastStep: -1 }));

  constructor(config: Partial<ForaConfig> = {}) {
    const c = { ...FORA_DEFAULTS, ...config };
    checkInt(this.name, 'interval', c.interval, 1);
    checkInt(this.name, 'startStep', c.startStep, 0);
    this.config = Object.freeze(c);
  }

  reset(): void {
    this.#branches.clear();
  }

  decide(ctx: StepContext): Decision {
    const s = this.#branches.get(ctx.branch);
    const first = s.lastStep < 0;
    advance(this.name, ctx, s);
    const { interval, startStep } = this.config;
    const compute = first || ctx.step < startStep || (ctx.step - startStep) % interval === 0;
    return compute ? 'compute' : 'reuse';
  }
}
