/**
 * T5's relative position bias (transformers T5Attention.compute_bias), for any sequence length.
 *
 * The bucket of a relative position is a function of one integer, and it saturates beyond
 * `max_distance`: so we precompute, in JavaScript, the bucket of every relative position in
 * [−K, K] (K = max(max_distance, num_buckets): 257 int64s for the usual 128 and 32), and the graph clips `key − query` to
 * that range and gathers. Computing the log-spaced buckets in-graph instead would depend on the
 * runtime's float32 Log: at the exact powers of two (relative distance 16, 32, 64) torch's value is
 * an integer, and one ulp less truncates into the neighbouring bucket.
 */
import { ModelFormatError } from '../../errors.js';
import type { Value } from '../../ir/graph.js';
import { InMemoryTensor } from '../../core/tensor.js';
import type { Ctx } from './context.js';

const f32 = Math.fround;

/**
 * transformers `T5Attention._relative_position_bucket` for one relative position
 * (`memory − context`), with torch's float32 arithmetic for the log-spaced part.
 */
export function t5RelativeBucket(relativePosition: number, numBuckets: number, maxDistance: number, bidirectional = true): number {
  let bucket = 0;
  let n = numBuckets;
  let rel = relativePosition;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rel > 0) bucket += n;
    rel = Math.abs(rel);
  } else {
    rel = -Math.min(rel, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rel < maxExact) return bucket + rel;
  // log(rel / max_exact) / log(max_distance / max_exact) * (n − max_exact), each step in float32
  const ratio = f32(f32(Math.log(f32(rel / maxExact))) / f32(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f32(ratio * (n - maxExact)));
  return bucket + Math.min(large, n - 1);
}

/** Buckets of relative positions −K..K, and K, checked to be saturated at both ends. */
export function t5BucketTable(numBuckets: number, maxDistance: number, file?: string): { table: number[]; k: number } {
  if (!Number.isInteger(numBuckets) || numBuckets < 2) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'relative_attention_num_buckets' = ${numBuckets} is not supported (need an integer ≥ 2)`, { file });
  }
  const k = Math.max(maxDistance, numBuckets);
  const far = 16 * k + 4096;
  for (const s of [-1, 1]) {
    if (t5RelativeBucket(s * k, numBuckets, maxDistance) !== t5RelativeBucket(s * far, numBuckets, maxDistance)) {
      throw new ModelFormatError('CONFIG_VALUE', `config key 'relative_attention_max_distance' = ${maxDistance} is not supported (buckets do not saturate)`, { file });
    }
  }
  return { table: Array.from({ length: 2 * k + 1 }, (_, i) => t5RelativeBucket(i - k, numBuckets, maxDistance)), k };
}

/**
 * The additive attention bias [1, heads, S, S] for a sequence as long as axis 1 of `ref`,
 * from `<scope>.relative_attention_bias.weight` [num_buckets, heads].
 */
export function t5PositionBias(c: Ctx, ref: Value, numBuckets: number, maxDistance: number, heads: number, file?: string): Value {
  const b = c.b;
  const { table, k } = t5BucketTable(numBuckets, maxDistance, file);
  return c.scope('relative_attention_bias', () => {
    const w = c.param('weight', [numBuckets, heads]);
    const len = b.squeeze(b.shape(ref, 1, 2), [0]);
    const pos = b.op('Range', [b.constI64(0), len, b.constI64(1)]);
    // rel[i, j] = j − i (memory − context)
    const rel = b.sub(b.unsqueeze(pos, [0]), b.unsqueeze(pos, [1]));
    const idx = b.add(b.op('Clip', [rel, b.constI64(-k), b.constI64(k)]), b.constI64(k));
    const buckets = b.op('Gather', [b.constant(new InMemoryTensor('int64', [table.length], BigInt64Array.from(table.map(BigInt)))), idx], { axis: 0 });
    const values = b.op('Gather', [w, buckets], { axis: 0 });
    return b.unsqueeze(b.transpose(values, [2, 0, 1]), [0]);
  });
}
