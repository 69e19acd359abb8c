/**
 * Flux's rotary embedding on interleaved pairs (diffusers `apply_rotary_emb(use_real=True,
 * use_real_unbind_dim=-1)`) → ONNX Runtime's `RotaryEmbedding` (interleaved=1), one pass over
 * q or k instead of six ops and four [B, S, H, D] temporaries:
 *
 *     x [B, S, H, D] ─► Reshape[0,0,0,-1,2] ─► Split(-1) ─► x0, x1
 *     Concat(Neg(x1), x0, -1) ─► Reshape[0,0,0,-1] ─► r             (r = x rotated by i, pairwise)
 *     x·cos + r·sin ─► y                                              (cos, sin: [S, 1, D] or [1, S, 1, D])
 *   ⇒
 *     x ─► Reshape[0,0,-1] ─► RotaryEmbedding(pos=[0], cos_cache, sin_cache, interleaved=1) ─► Reshape(Shape(x)) ─► y
 *
 * ORT's kernel reads one cos/sin per pair and position (caches [S, D/2], row s for token s), so
 * the fusion fires only where cos and sin provably repeat each value over a pair (computed from
 * pair-repeated frequencies and ids, as `rotaryEmbedding` does) and broadcast over batch and
 * heads; the caches are their even channels, built once per cos/sin and shared by every rotary.
 */
import type { Node, Value } from '../../../ir/graph.js';
import { noMatch, type Rule } from '../../../ir/rewrite.js';
import { constInts, inferredRank } from '../../../ir/type-inference.js';
import { emitBefore } from './emit.js';
import { constNumbers, producedBy, removeIfDead, soleReader } from '../../../ir/match.js';

const other = (n: Node, v: Value) => (n.inputs[0] === v ? n.inputs[1] : n.inputs[0]);

/** The Reshape target `[0, …, 0, …tail]` of rank `rank` (leading zeros copy x's dims). */
function isTarget(n: Node | undefined, tail: number[], rank: number): boolean {
  const t = n && constInts(n.inputs[1]);
  return !!t && t.length === rank && t.every((d, i) => (i < rank - tail.length ? d === 0 : d === tail[i - rank + tail.length]));
}

/** Whether `v`'s values along its last axis come in equal pairs (v[…, 2j] = v[…, 2j+1]), provably from the graph. */
export function pairRepeated(v: Value | null | undefined, depth = 0): boolean {
  if (!v || depth > 12) return false;
  const c = constNumbers(v);
  if (c) {
    const shape = v.const?.shape ?? v.shape ?? [];
    const last = shape.length ? shape[shape.length - 1] : 1;
    if (last === 1) return true; // broadcast over the last axis: one value for every channel
    return typeof last === 'number' && last % 2 === 0 && c.every((x, i) => i % 2 === 0 || x === c[i - 1]);
  }
  const p = v.producer;
  if (!p || p.domain) return false;
  switch (p.opType) {
    case 'Cos': case 'Sin': case 'Neg': case 'Cast': case 'Identity':
      return pairRepeated(p.inputs[0], depth + 1);
    case 'Mul': case 'Add': case 'Sub': case 'Div':
      return pairRepeated(p.inputs[0], depth + 1) && pairRepeated(p.inputs[1], depth + 1);
    case 'Unsqueeze': {
      // a new last axis would move the pairs off it
      const axes = constInts(p.inputs[1]) ?? p.attrInts('axes');
      const r = inferredRank(p.inputs[0]);
      return !!axes && r !== undefined && axes.every((a) => a !== -1 && a !== r + axes.length - 1) && pairRepeated(p.inputs[0], depth + 1);
    }
    case 'Gather': {
      // gathering along the last axis with paired indices repeats whatever it gathers
      const r = inferredRank(p.inputs[0]);
      const axis = p.attrInt('axis', 0);
      const idx = constNumbers(p.inputs[1]); // constInts stops at 64 elements
      return r !== undefined && (axis === -1 || axis === r - 1) && !!idx && idx.length % 2 === 0 && idx.every((x, i) => i % 2 === 0 || x === idx[i - 1]);
    }
    default:
      return false;
  }
}

/** cos/sin broadcast against x [B, S, H, D]: one row per position, the same for every batch and head. */
function perPosition(v: Value): boolean {
  const s = v.shape;
  if (!s) return false;
  return (s.length === 3 && s[1] === 1) || (s.length === 4 && s[0] === 1 && s[2] === 1);
}

interface Match {
  x: Value;
  cos: Value;
  sin: Value;
  headDim: number;
}

export const rotaryEmbeddingFusion: Rule<Match> = {
  name: 'rotary-to-rotary-embedding',
  anchor: 'Add',
  match(add) {
    // y = x·cos + r·sin, either order
    for (const [a, b] of [[0, 1], [1, 0]] as const) {
      const mx = producedBy(add.inputs[a], 'Mul');
      const mr = producedBy(add.inputs[b], 'Mul');
      if (!mx || !mr) continue;
      for (const ri of [0, 1]) {
        const r = mr.inputs[ri]!;
        const sin = mr.inputs[1 - ri]!;
        const back = producedBy(r, 'Reshape');
        const cat = producedBy(back?.inputs[0], 'Concat');
        if (!back || !cat || cat.inputs.length !== 2) continue;
        const neg = producedBy(cat.inputs[0], 'Neg');
        const split = producedBy(neg?.inputs[0], 'Split');
        if (!neg || !split || split.outputs.length !== 2 || neg.inputs[0] !== split.outputs[1] || cat.inputs[1] !== split.outputs[0]) continue;
        const pairs = producedBy(split.inputs[0], 'Reshape');
        const x = pairs?.inputs[0];
        if (!pairs || !x || (mx.inputs[0] !== x && mx.inputs[1] !== x)) continue;
        const cos = other(mx, x)!;
        if (inferredRank(x) !== 4) return noMatch('x is not [B, S, H, D]');
        if (!isTarget(pairs, [-1, 2], 5) || !isTarget(back, [-1], 4)) return noMatch('the pairs are not x reshaped to [..., D/2, 2] and back');
        const axisOk = (n: Node, rank: number) => n.attrInt('axis', 0) === -1 || n.attrInt('axis', 0) === rank - 1;
        if (!axisOk(split, 5) || !axisOk(cat, 5)) return noMatch('the pair is not split and joined on the last axis');
        const sizes = constInts(split.inputs[1]) ?? split.attrInts('split');
        if (sizes && (sizes.length !== 2 || sizes[0] !== 1 || sizes[1] !== 1)) return noMatch('the split is not into (x0, x1)');
        // the unfused pieces must go away with the pattern
        for (const [v, n] of [[pairs.outputs[0]!, split], [split.outputs[1]!, neg], [neg.outputs[0]!, cat], [cat.outputs[0]!, back], [r, mr]] as const) {
          if (soleReader(v, n.opType) !== n) return noMatch(`${v.name} has other readers`);
        }
        if (!perPosition(cos) || !perPosition(sin)) return noMatch('cos/sin are not one row per position ([S, 1, D] or [1, S, 1, D])');
        const d = cos.shape![cos.shape!.length - 1];
        if (typeof d !== 'number' || d % 2 || (sin.shape![sin.shape!.length - 1] !== d)) return noMatch('the rotary width is not a known even size');
        if (!pairRepeated(cos) || !pairRepeated(sin)) return noMatch('cos/sin do not provably repeat each value over a pair');
        return { x, cos, sin, headDim: d };
      }
    }
    return noMatch('not x·cos + rotate(x)·sin');
  },
  rewrite(m, add) {
    const cosCache = cache(m.cos, m.headDim, add);
    const sinCache = cache(m.sin, m.headDim, add);
    const out = emitBefore(add, (b) => {
      const x3 = b.op('Reshape', [m.x, b.constI64([0, 0, -1])]);
      // position ids [0]: token s reads cache row s (Flux's ids already give each token its angles)
      const rot = b.op('RotaryEmbedding', [x3, b.constI64([0], [1]), cosCache, sinCache], { interleaved: 1 }, { domain: 'com.microsoft', dtype: m.x.dtype });
      return b.op('Reshape', [rot, b.shape(m.x)]);
    });
    out.shape = add.outputs[0]!.shape;
    const g = add.graph!;
    if (g.outputs.includes(add.outputs[0]!)) [out.name, add.outputs[0]!.name] = [add.outputs[0]!.name, `${add.outputs[0]!.name}_unfused`];
    g.replaceAllUses(add.outputs[0]!, out);
    removeIfDead(add);
  },
};

/** The [S, D/2] cache of a per-position cos or sin: its even channels, built once per value. */
const caches = new WeakMap<Value, Value>();
function cache(v: Value, d: number, at: Node): Value {
  const known = caches.get(v);
  if (known && known.producer?.graph === at.graph) return known;
  // before the first rotary that reads it; later rotaries come after that one
  const c = emitBefore(at, (b) => {
    const even = b.op('Gather', [v, b.constI64(Array.from({ length: d / 2 }, (_, i) => 2 * i))], { axis: -1 });
    return b.op('Reshape', [even, b.constI64([-1, d / 2])]);
  });
  caches.set(v, c);
  return c;
}
