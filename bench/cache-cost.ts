// A cached step's cost against the same graph with the skipped part deleted (issue: within 15%),
// on a random-weight Flux transformer at the benchmark's flux-small proportions (12 heads × 64,
// 3 double + 6 single blocks, joint_attention_dim 1024; 256×256: 256 image + 128 text tokens),
// one denoiser call, median of N runs, interleaved. Not a test: it measures and prints.
//   node --import tsx bench/cache-cost.ts [--runs 10] [--tokens 256] [--threads 2] [--only fastercache]
import { parseArgs } from 'node:util';
import { InMemoryTensor } from '../src/core/tensor.js';
import { Graph, type Model } from '../src/ir/graph.js';
import { deadCodeElimination } from '../src/ir/passes/dead-code-elimination.js';
import { ModelConfig } from '../src/models/config.js';
import { buildFluxTransformer2DModel } from '../src/models/flux-transformer-2d.js';
import { Weights, type WeightSource } from '../src/models/weights.js';
import { Session, type Feed, type HostTensor } from '../src/runtime/session.js';
import { foraTransform } from '../src/algorithms/cachers/fora.js';
import { fbCacheTransform } from '../src/algorithms/cachers/fbcache.js';
import { teaCacheTransform } from '../src/algorithms/cachers/teacache.js';
import { fasterCacheTransform } from '../src/algorithms/cachers/fastercache.js';
import { pabTransform } from '../src/algorithms/cachers/pab.js';

const { values } = parseArgs({ options: { runs: { type: 'string' }, tokens: { type: 'string' }, threads: { type: 'string' }, only: { type: 'string' } } });
const RUNS = Number(values.runs ?? 10);
const TOKENS = Number(values.tokens ?? 256);
const THREADS = Number(values.threads ?? 2);

const CONFIG = {
  _class_name: 'FluxTransformer2DModel', attention_head_dim: 64, num_attention_heads: 12, num_layers: 3, num_single_layers: 6,
  in_channels: 64, joint_attention_dim: 1024, pooled_projection_dim: 768, guidance_embeds: false, axes_dims_rope: [8, 28, 28], patch_size: 1,
};

let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1;
const source: WeightSource = {
  source: 'random', names: [], has: () => true, fileOf: () => undefined,
  tensor: (_n, shape) => new InMemoryTensor('float32', shape!, Float32Array.from({ length: shape!.reduce((a, b) => a * b, 1) }, rand)),
};
const build = (): Model => buildFluxTransformer2DModel(new ModelConfig(CONFIG, 'bench'), new Weights(source)).model!;

/** The 'if' graph with every cache If replaced by its else branch: the skipped part deleted. */
function deleteSkipped(m: Model): Model {
  const g = m.graph;
  for (const n of g.nodeList()) {
    if (n.opType !== 'If' || !n.name.startsWith('/cache/')) continue;
    const els = (n.attr('else_branch') as { value: Graph }).value;
    const outs = [...els.outputs];
    for (const e of els.nodeList()) { els.remove(e, true); g.insert(e, n); }
    n.outputs.forEach((o, i) => g.replaceAllUses(o, outs[i]!));
    // graph outputs keep their names
    n.outputs.forEach((o, i) => { const k = g.outputs.indexOf(outs[i]!); if (k >= 0) { const name = o.name; o.name = `${name}/dead`; outs[i]!.name = name; } });
    g.remove(n, true);
  }
  deadCodeElimination.run(m);
  return m;
}

const f32 = (dims: number[]): HostTensor => ({ dtype: 'float32', dims, data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, rand) });
const TXT = 128;
const feeds: Record<string, HostTensor> = {
  hidden_states: f32([1, TOKENS, 64]), encoder_hidden_states: f32([1, TXT, 1024]), pooled_projections: f32([1, 768]),
  timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(0.5) },
  img_ids: f32([TOKENS, 3]), txt_ids: f32([TXT, 3]),
};
const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
const scalar = (x: number): HostTensor => ({ dtype: 'float32', dims: [], data: Float32Array.of(x) });

async function median(s: Session, f: Record<string, Feed>, fetch: string[], times: number[]): Promise<void> {
  const t0 = performance.now();
  await s.run(f, fetch);
  times.push(performance.now() - t0);
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

// name, transform, the feeds of a reused step, the input that makes a step compute (taylorseer
// runs fora's graph: the same figure)
for (const [name, transform, extra, computeInput] of [
  ['fora', (m: Model) => foraTransform(m), { 'cache.compute': bool(false) }, 'cache.compute'],
  ['fbcache', (m: Model) => fbCacheTransform(m), { 'cache.force': bool(false), 'cache.threshold': scalar(1e9) }, 'cache.force'],
  ['teacache', (m: Model) => teaCacheTransform(m), { 'cache.force': bool(false), 'cache.threshold': scalar(1e9), 'cache.acc': scalar(0) }, 'cache.force'],
  ['pab', (m: Model) => pabTransform(m), { 'cache.compute.spatial': bool(false) }, 'cache.compute.spatial'],
  ['fastercache', (m: Model) => fasterCacheTransform(m), { 'cache.compute': bool(false), 'cache.attention_weight': scalar(0.5) }, 'cache.compute'],
] as const) {
  if (values.only && values.only !== name) continue;
  const plain = await Session.create(build(), { threads: THREADS });
  const cached = await Session.create(transform(build()), { threads: THREADS });
  const deleted = await Session.create(deleteSkipped(transform(build())), { threads: THREADS });
  // a computed step first, to have the kept values (and signals) at their real shapes
  const stateFeeds: Record<string, Feed> = {};
  const cacheIns = cached.inputNames.filter((n) => n.startsWith('cache_in/') || n.startsWith('cache_prev/') || n === 'cache.signal_in');
  const first = await cached.run({ ...feeds, ...extra, [computeInput]: bool(true), ...Object.fromEntries(cacheIns.map((n) => [n, { dtype: 'float32', dims: [1, 1, 1], data: new Float32Array(1) } as HostTensor])) });
  for (const n of cacheIns) stateFeeds[n] = first.outputs[n === 'cache.signal_in' ? 'cache.signal' : n.replace(/^cache_(in|prev)\//, 'cache_out/')]!;
  // what the wrapper fetches: the prediction, the kept values and the signals (ORT runs only what the fetches need)
  const out = cached.outputNames.filter((n) => deleted.outputNames.includes(n));
  const tp: number[] = [], tc: number[] = [], td: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    if (r < 3) await median(plain, feeds, ['out_hidden_states'], tp);
    await median(cached, { ...feeds, ...extra, ...stateFeeds }, out, tc);
    await median(deleted, { ...feeds, ...extra, ...stateFeeds }, out, td);
  }
  [tp, tc, td].forEach((a) => a.shift()); // warm-up
  console.log(`${name}: fetching ${out.length} outputs; ${cached.inputNames.length} inputs`);
  const c = med(tc), d = med(td), p = med(tp);
  console.log(`${name}: full step ${p.toFixed(1)} ms; cached step ${c.toFixed(1)} ms; skipped part deleted ${d.toFixed(1)} ms; cached/deleted ${(c / d).toFixed(3)}`);
  await Promise.all([plain.release(), cached.release(), deleted.release()]);
}

