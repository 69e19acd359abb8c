/**
 * The one place that knows every algorithm: imported explicitly, so a bundle never depends on
 * import side effects. A name registered twice is a programming error and throws.
 */
import type { Algorithm } from './algorithm.js';
import { qkv } from './factorizers/qkv.js';
import { int8Dynamic } from './quantizers/int8-dynamic.js';

export type Registry = ReadonlyMap<string, Algorithm>;

export function makeRegistry(algorithms: readonly Algorithm[]): Registry {
  const m = new Map<string, Algorithm>();
  for (const a of algorithms) {
    if (m.has(a.name)) throw new Error(`algorithm '${a.name}' is registered twice`);
    m.set(a.name, a);
  }
  return m;
}

export const ALGORITHMS: Registry = makeRegistry([qkv, int8Dynamic] as Algorithm[]);
