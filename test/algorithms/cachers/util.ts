// Shared helpers for the cacher tests: run a policy over a generation, render a schedule, swap a
// pipeline's denoiser for one call.
import type { Decision, GuidanceBranch, StepContext } from '../../../src/algorithms/cachers/policies/index.js';
import type { Denoiser } from '../../../src/pipelines/denoiser.js';
import type { Pipeline } from '../../../src/pipelines/loader.js';

/** '1' = compute, '0' = reuse: the notation the reference schedules print in (Pruna's cache_schedule). */
export function bits(decisions: readonly (Decision | boolean)[]): string {
  return decisions.map((d) => (d === 'compute' || d === true ? '1' : '0')).join('');
}

export function ctx(step: number, numSteps: number, branch: GuidanceBranch = 'cond', timestep = 1000 - step): StepContext {
  return { step, numSteps, timestep, branch };
}

/** Asks `decide` for every step 0..numSteps-1 on one branch. */
export function runSteps(numSteps: number, decide: (c: StepContext) => Decision, branch: GuidanceBranch = 'cond', timesteps?: readonly number[]): string {
  const out: Decision[] = [];
  for (let i = 0; i < numSteps; i++) out.push(decide(ctx(i, numSteps, branch, timesteps ? timesteps[i]! : 1000 - i)));
  return bits(out);
}

/** Runs `fn` with `d` as the pipeline's denoiser, then puts the pipeline's own back. */
export async function withWrapper<T>(p: Pipeline, d: Denoiser, fn: () => Promise<T>): Promise<T> {
  const inner = p.denoiser;
  p.denoiser = d;
  try {
    return await fn();
  } finally {
    p.denoiser = inner;
  }
}
