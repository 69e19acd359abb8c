/**
 * The one place that knows every algorithm: imported explicitly, so a bundle never depends on
 * import side effects. A name registered twice is a programming error and throws.
 */
import type { Algorithm } from './algorithm.js';
import { ortCompile } from './compilers/ort-compile.js';
import { qkv } from './factorizers/qkv.js';
import { int8Dynamic } from './quantizers/int8-dynamic.js';
import { int4WeightOnly } from './quantizers/int4-weight-only.js';
import { int8WeightOnly } from './quantizers/int8-weight-only.js';
import { fp16 } from './quantizers/fp16.js';
import { bf16 } from './quantizers/bf16.js';
import { int8Static } from './quantizers/int8-static.js';
import { fora } from './cachers/fora.js';
import { fbcache } from './cachers/fbcache.js';
import { teacache } from './cachers/teacache.js';
import { taylorseer } from './cachers/taylorseer.js';
import { deepcache } from './cachers/deepcache.js';
import { pab } from './cachers/pab.js';
import { fastercache } from './cachers/fastercache.js';

export type Registry = ReadonlyMap<string, Algorithm>;

export function makeRegistry(algorithms: readonly Algorithm[]): Registry {
  const m = new Map<string, Algorithm>();
  for (const a of algorithms) {
    if (m.has(a.name)) throw new Error(`algorithm '${a.name}' is registered twice`);
    m.set(a.name, a);
  }
  return m;
}

export const ALGORITHMS: Registry = makeRegistry([qkv, int8Dynamic, int8Static, int8WeightOnly, int4WeightOnly, fp16, bf16, fora, fbcache, teacache, taylorseer, deepcache, pab, fastercache, ortCompile] as Algorithm[]);
