/** Small matching helpers shared by the fusion rules: constants, producers by op type. */
import { tensorData } from '../core/tensor.js';
import { Node, Value, type AttrValue } from './graph.js';

/** The numbers of a constant value (an initializer or a Constant node's output), or undefined. */
export function constNumbers(v: Value | null | undefined): number[] | undefined {
  if (!v) return undefined;
  const t = v.const ?? (v.producer?.opType === 'Constant' && !v.producer.domain ? (v.producer.attr('value')?.value as Parameters<typeof tensorData>[0] | undefined) : undefined);
  if (!t || typeof t !== 'object' || !('dtype' in t)) return undefined;
  if (t.byteLength > 1 << 16) return undefined; // shape vectors and scalars only
  return Array.from(tensorData(t) as ArrayLike<number | bigint>, Number);
}

/** The one number of a scalar (or one-element) constant. */
export function constScalar(v: Value | null | undefined): number | undefined {
  const n = constNumbers(v);
  return n?.length === 1 ? n[0] : undefined;
}

/** The producer of `v` when it is a default-domain `op`. */
export function producedBy(v: Value | null | undefined, op: string): Node | undefined {
  const p = v?.producer;
  return p && p.opType === op && !p.domain ? p : undefined;
}

/** The only reader of `v` when it is a default-domain `op` and `v` is no graph output (so the pattern may swallow it). */
export function soleReader(v: Value, op: string): Node | undefined {
  if (v.uses.size !== 1 || v.producer?.graph?.outputs.includes(v)) return undefined;
  const n = [...v.uses][0]!.node;
  return n.opType === op && !n.domain ? n : undefined;
}

/** True when `v` feeds nothing but `node` and is no graph output (so it may disappear with it). */
export function onlyFeeds(v: Value, node: Node): boolean {
  return [...v.uses].every((u) => u.node === node) && !node.graph?.outputs.includes(v);
}

export function sameInts(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return !!a && a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Removes `node` when nothing reads its outputs any more, then its producers that became
 * unread in turn: what a fusion leaves behind, removed in its rewrite so that the rule cannot
 * match the same (now dead) pattern again in the next round.
 */
export function removeIfDead(node: Node): void {
  const g = node.graph;
  if (!g || node.outputs.some((o) => o.uses.size || g.outputs.includes(o))) return;
  const inputs = node.inputs.filter((v): v is Value => !!v);
  g.remove(node);
  for (const v of inputs) if (v.producer?.graph === g) removeIfDead(v.producer);
}

/**
 * Puts the fused node `fused` (op `op`, named after the pattern's anchor) in place of the
 * pattern that ends at `last`: readers of `last`'s output read the fused output, a graph output
 * keeps its name, and the unfused chain is removed.
 */
export function substitute(anchor: Node, last: Node, op: string, domain: string, inputs: (Value | null)[], attrs: Record<string, AttrValue> = {}): Node {
  const g = last.graph!;
  const fused = new Node(op, anchor.name.replace(new RegExp(`${anchor.opType}(_\\d+)?$`), `${op}$1`), domain);
  for (const [k, v] of anchor.metadata) fused.metadata.set(k, v);
  fused.inputs.push(...inputs);
  for (const [k, a] of Object.entries(attrs)) fused.attributes.set(k, a);
  const old = last.outputs[0]!;
  const out = new Value(`${fused.name}_output_0`, old.dtype, old.shape);
  fused.outputs.push(out);
  g.insert(fused, last);
  if (g.outputs.includes(old)) [out.name, old.name] = [old.name, `${old.name}_unfused`];
  g.replaceAllUses(old, out);
  removeIfDead(last);
  return fused;
}
