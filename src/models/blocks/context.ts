import type { GraphBuilder } from '../../ir/builder.js';
import type { Value } from '../../ir/graph.js';
import type { Weights } from '../weights.js';

/**
 * What every block builder works with: the graph builder (whose scope is the module path) and
 * the checkpoint weights. Weights are looked up by the same module path, so an initializer is
 * named exactly as its checkpoint tensor.
 */
export class Ctx {
  constructor(readonly b: GraphBuilder, readonly w: Weights) {}

  scope<T>(name: string | number, fn: () => T): T {
    return this.b.scope(name, fn);
  }

  private full(name: string): string {
    return this.b.path ? `${this.b.path}.${name}` : name;
  }

  hasParam(name: string): boolean {
    return this.w.has(this.full(name));
  }

  /** Parameter `<module path>.<name>`, checked to have `shape`. */
  param(name: string, shape: readonly number[]): Value {
    return this.b.weight(name, this.w.get(this.full(name), shape));
  }

  /** A Linear weight [out, in], stored transposed as [in, out] for MatMul. */
  linearWeight(name: string, outFeatures: number, inFeatures: number): Value {
    return this.b.weight(name, this.w.linear(this.full(name), outFeatures, inFeatures));
  }
}
