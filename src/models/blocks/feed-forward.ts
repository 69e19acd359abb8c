/** diffusers FeedForward: net.0 (GELU/GEGLU projection) → net.2 (Linear). */
import type { Value } from '../../ir/graph.js';
import type { Ctx } from './context.js';
import { gelu, linear } from './layers.js';

export type FeedForwardActivation = 'geglu' | 'gelu' | 'gelu-approximate';

export function feedForward(c: Ctx, name: string, x: Value, dim: number, opts: { dimOut?: number; mult?: number; innerDim?: number; activation?: FeedForwardActivation; bias?: boolean } = {}): Value {
  const inner = opts.innerDim ?? dim * (opts.mult ?? 4);
  const act = opts.activation ?? 'geglu';
  const bias = opts.bias ?? true;
  return c.scope(name, () => {
    const h = c.scope('net.0', () => {
      if (act === 'geglu') {
        const proj = linear(c, 'proj', x, dim, inner * 2, bias);
        const [hidden, gate] = c.b.split(proj, [inner, inner], -1) as [Value, Value];
        return c.b.mul(hidden, gelu(c, gate));
      }
      return gelu(c, linear(c, 'proj', x, dim, inner, bias), act === 'gelu-approximate' ? 'tanh' : 'none');
    });
    return linear(c, 'net.2', h, inner, opts.dimOut ?? dim, bias);
  });
}
