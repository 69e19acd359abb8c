/**
 * What every cache policy shares: the step context it is asked about, its answer, per-branch
 * state, and config validation. A policy is the pure half of a cacher (see "Cachers" in
 * docs/ARCHITECTURE.md): it decides, per denoising step and guidance branch, whether the cut
 * tensors are recomputed or reused; it never touches a graph or a session.
 *
 * Caller contract, common to all policies:
 * - `step` is the position in the scheduler's `timesteps` (0-based, one per model call; PNDM has
 *   one more entry than inference steps) and `numSteps` is the number of model calls,
 *   i.e. `timesteps.length`.
 * - Call `reset()` at the start of every generation, and whenever batch size, resolution or step
 *   count changes (`GenerationTracker` tells when); state would otherwise leak across images.
 * - Ask once per (step, branch) — per (step, branch, kind) for policies with kinds — in
 *   increasing step order. Each guidance branch keeps its own state, as diffusers'
 *   `cache_context("cond" | "uncond")` does.
 * - The first call on a branch always computes: there is nothing to reuse yet.
 */
import { ConfigError } from '../../../errors.js';

/** A classifier-free-guidance branch: run alone ('cond', 'uncond') or batched together ('cfg'). */
export type GuidanceBranch = 'cond' | 'uncond' | 'cfg';
export const GUIDANCE_BRANCHES: readonly GuidanceBranch[] = ['cond', 'uncond', 'cfg'];

/** Recompute the cut tensors, or reuse (or extrapolate) the kept ones. */
export type Decision = 'compute' | 'reuse';

export interface StepContext {
  /** position in the scheduler's `timesteps` */
  step: number;
  /** number of model calls of this generation (`timesteps.length`) */
  numSteps: number;
  /** the scheduler's timestep value at `step` (diffusers' `current_timestep`; FLUX: sigma·1000) */
  timestep: number;
  branch: GuidanceBranch;
}

export type CacherName = 'fora' | 'deepcache' | 'pab' | 'fastercache' | 'taylorseer' | 'fbcache' | 'teacache';

export interface CachePolicy {
  readonly name: CacherName;
  /** Forgets all state, every branch. The caller calls it at the start of every generation. */
  reset(): void;
}

/** One state object per guidance branch (diffusers' StateManager keyed by cache context). */
export class BranchStates<S> {
  readonly #states = new Map<string, S>();
  constructor(private readonly create: () => S) {}
  get(branch: GuidanceBranch, kind = ''): S {
    const key = kind ? `${branch}/${kind}` : branch;
    let s = this.#states.get(key);
    if (s === undefined) {
      s = this.create();
      this.#states.set(key, s);
    }
    return s;
  }
  clear(): void {
    this.#states.clear();
  }
}

/** Per-branch bookkeeping every policy needs: the last step asked, so order mistakes are caught. */
export interface StepTrack {
  lastStep: number;
}

/**
 * Checks the context and that steps on one branch only move forward; a step that goes back means
 * the caller forgot `reset()` between generations.
 */
export function advance(policy: CacherName, ctx: StepContext, track: StepTrack): void {
  const { step, numSteps, branch } = ctx;
  if (!Number.isInteger(numSteps) || numSteps < 1) {
    throw new ConfigError('CACHE_STEP', `${policy}: numSteps must be a positive integer, got ${numSteps}`, 'numSteps');
  }
  if (!Number.isInteger(step) || step < 0 || step >= numSteps) {
    throw new ConfigError('CACHE_STEP', `${policy}: step ${step} is outside 0..${numSteps - 1}`, 'step');
  }
  if (!(GUIDANCE_BRANCHES as readonly string[]).includes(branch)) {
    throw new ConfigError('CACHE_STEP', `${policy}: unknown guidance branch '${branch}' (cond, uncond, cfg)`, 'branch');
  }
  if (step <= track.lastStep) {
    throw new ConfigError(
      'CACHE_STEP_ORDER',
      `${policy}: step ${step} asked after step ${track.lastStep} on branch '${branch}' — call reset() at the start of every generation`,
      'step',
    );
  }
  track.lastStep = step;
}

/** Python's `%` (the sign of the divisor), which the reference schedules rely on for negative operands. */
export function pyMod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

export function checkInt(policy: CacherName, key: string, value: number, min: number, max = Infinity): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `${min}..${max}`;
    throw new ConfigError('CACHE_CONFIG', `${policy}: ${key} must be an integer ${range}, got ${value}`, key);
  }
  return value;
}

export function checkNumber(policy: CacherName, key: string, value: number, min = -Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new ConfigError('CACHE_CONFIG', `${policy}: ${key} must be a finite number >= ${min}, got ${value}`, key);
  }
  return value;
}

/** An open timestep interval `(lo, hi)`, as diffusers' `*_timestep_skip_range` tuples are read. */
export type TimestepRange = readonly [number, number];

export function checkRange(policy: CacherName, key: string, r: TimestepRange): TimestepRange {
  if (!Array.isArray(r) || r.length !== 2 || !r.every((x) => typeof x === 'number' && !Number.isNaN(x)) || r[0] > r[1]) {
    throw new ConfigError('CACHE_CONFIG', `${policy}: ${key} must be [low, high] with low <= high, got ${JSON.stringify(r)}`, key);
  }
  return [r[0], r[1]];
}

/** diffusers compares `lo < timestep < hi`, both ends excluded. */
export function inRange(r: TimestepRange, timestep: number): boolean {
  return r[0] < timestep && timestep < r[1];
}
