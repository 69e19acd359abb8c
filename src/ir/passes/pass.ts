import { SmashError } from '../../errors.js';
import type { Model } from '../graph.js';

/** A graph pass: named, returns the (possibly same) model and whether it changed anything. */
export interface Pass {
  readonly name: string;
  run(model: Model): PassResult;
}

export interface PassResult {
  model: Model;
  changed: boolean;
}

/** A pass of a sequence failed: names the pass and carries the reason. */
export class PassError extends SmashError {
  constructor(readonly pass: string, cause: unknown) {
    super('PASS_FAILED', `pass '${pass}' failed: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

/** Runs passes in order; reports which pass failed, and which changed the model. */
export function runPasses(model: Model, passes: readonly Pass[]): PassResult & { changedBy: string[] } {
  let m = model;
  const changedBy: string[] = [];
  for (const p of passes) {
    let r: PassResult;
    try {
      r = p.run(m);
    } catch (e) {
      throw new PassError(p.name, e);
    }
    m = r.model;
    if (r.changed) changedBy.push(p.name);
  }
  return { model: m, changed: changedBy.length > 0, changedBy };
}

/** Repeats a pass sequence until nothing changes (at most `maxIterations` times). */
export function fixedPoint(name: string, passes: readonly Pass[], maxIterations = 10): Pass {
  return {
    name,
    run(model) {
      let changed = false;
      let m = model;
      for (let i = 0; i < maxIterations; i++) {
        const r = runPasses(m, passes);
        m = r.model;
        if (!r.changed) break;
        changed = true;
      }
      return { model: m, changed };
    },
  };
}
