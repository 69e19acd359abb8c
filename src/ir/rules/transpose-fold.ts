import { Node, Value } from '../graph.js';
import { noMatch, type Rule } from '../rewrite.js';

/**
 * Folds two consecutive Transposes into one (or none when they cancel).
 *
 *     x ─► Transpose(p1) ─► t ─► Transpose(p2) ─► y    ⇒    x ─► Transpose(p1∘p2) ─► y
 *
 * Only when t has no other reader (else the first Transpose stays and nothing is saved).
 */
export const transposeFold: Rule<{ x: Value; perm: number[]; first: Node }> = {
  name: 'transpose-fold',
  anchor: 'Transpose',
  match(node: Node) {
    const t = node.inputs[0];
    const first = t?.producer;
    if (!t || !first || first.opType !== 'Transpose' || first.domain) return noMatch('input is not produced by a Transpose');
    if (t.uses.size !== 1 || node.graph!.outputs.includes(t)) return noMatch(`'${t.name}' has other readers`);
    const p1 = first.attrInts('perm');
    const p2 = node.attrInts('perm');
    if (!p1 || !p2 || p1.length !== p2.length) return noMatch('perm attributes missing or of different rank');
    return { x: first.inputs[0]!, perm: p2.map((i) => p1[i]!), first };
  },
  rewrite({ x, perm, first }, node) {
    const g = node.graph!;
    const out = node.outputs[0]!;
    if (perm.every((p, i) => p === i) && !g.outputs.includes(out)) {
      g.replaceAllUses(out, x);
      g.remove(node);
    } else {
      node.setInput(0, x);
      node.attributes.set('perm', { type: 'ints', value: perm });
    }
    if (first.outputs[0]!.uses.size === 0) g.remove(first);
  },
};
