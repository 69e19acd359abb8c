/**
 * Emitting a fused subgraph of several nodes: built with the IR's GraphBuilder (names, module
 * paths, dtype and shape inference), then moved in front of the pattern's last node, where every
 * value the pattern reads already exists.
 */
import { GraphBuilder } from '../../../ir/builder.js';
import type { Node } from '../../../ir/graph.js';
import { modulePath } from '../../../ir/modules.js';

/**
 * Runs `build` with a builder scoped to `at`'s module (so new nodes are named and attributed
 * like the nodes they replace) and inserts what it added right before `at`.
 */
export function emitBefore<T>(at: Node, build: (b: GraphBuilder) => T): T {
  const g = at.graph!;
  const b = new GraphBuilder(g);
  const existing = new Set(g.nodes());
  const scopes = modulePath(at).split('.').reduce<string[]>((acc, part) => {
    // indexed children stay with their container (`transformer_blocks.3`), as builders scope them
    if (/^\d+$/.test(part) && acc.length) acc[acc.length - 1] += `.${part}`;
    else acc.push(part);
    return acc;
  }, []).filter(Boolean);
  const inScopes = (i: number): T => (i < scopes.length ? b.scope(scopes[i]!, () => inScopes(i + 1)) : build(b));
  const result = inScopes(0);
  // the builder appended its nodes in dependency order: move them, in that order, before `at`
  const added = g.nodeList().filter((n) => !existing.has(n));
  for (const n of added) g.remove(n, true);
  for (const n of added) g.insert(n, at);
  return result;
}
