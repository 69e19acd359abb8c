// ortCompile's element-wise fusions (rotary → RotaryEmbedding, adaLN modulation → LayerNormalization)
// on one denoiser call of a Flux-layout transformer after qkv + int8Dynamic: ortCompile with the
// fusions that came before them against ortCompile with all, interleaved, medians of N runs of
// CPU time (robust on a shared machine: preemption does not count) and wall time; op counts of our
// graph and of ONNX Runtime's optimized one; with --profile, ORT's profiler per op (per-node medians).
// Not a test: it measures and prints.
//   npm run build && node bin/smash.js create-random --pipeline flux-dev --width-mult 0.25 --depth 2 --out /tmp/fusions-flux
//   node --import tsx bench/fusions.ts --model /tmp/fusions-flux/transformer [--runs 15] [--threads 1] [--tokens 256] [--text 128] [--profile]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { FUSIONS } from '../src/algorithms/compilers/ort-compile.js';
import { qkv } from '../src/algorithms/factorizers/qkv.js';
import { int8Dynamic } from '../src/algorithms/quantizers/int8-dynamic.js';
import type { Model } from '../src/ir/graph.js';
import { loadModel } from '../src/ir/model-file.js';
import { deadCodeElimination } from '../src/ir/passes/dead-code-elimination.js';
import { rulesPass } from '../src/ir/rewrite.js';
import { encodeModel } from '../src/ir/serde.js';
import { buildComponent } from '../src/models/convert.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, runs: { type: 'string' }, threads: { type: 'string' }, tokens: { type: 'string' }, text: { type: 'string' }, profile: { type: 'boolean' } } });
if (!values.model) throw new Error('--model <FluxTransformer2DModel folder> is required');
const RUNS = Number(values.runs ?? 15);
const THREADS = Number(values.threads ?? 1);
const N = Number(values.tokens ?? 256);
const S = Number(values.text ?? 128);
const NEW = new Set(['rotary-to-rotary-embedding', 'modulated-layer-norm']);

const target = { className: 'FluxPipeline', denoiser: 'flux' as const, components: ['transformer'] };
const component = { name: 'transformer', role: 'denoiser' as const, architecture: 'FluxTransformer2DModel' };
function smashed(fusions: 'before' | 'after'): { model: Model; fired: Record<string, number> } {
  let m = buildComponent(values.model!).model!;
  m = qkv.apply(qkv.schema.parse({}), target).transform!(component, m);
  m = int8Dynamic.apply(int8Dynamic.schema.parse({}), target).transform!(component, m);
  // what fuse(m, 'cpu') does, with or without the element-wise fusions
  const pass = rulesPass('fusions', FUSIONS.filter((f) => fusions === 'after' || !NEW.has(f.rule.name)).map((f) => f.rule));
  pass.run(m);
  deadCodeElimination.run(m);
  m.opsetImports.set('com.microsoft', 1);
  return { model: m, fired: Object.fromEntries(pass.fired) };
}

const inputs = (cfg: Record<string, unknown>) => {
  const r = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin((i + 1) * 12.9898 + k) * 0.5);
  const side = Math.round(Math.sqrt(N));
  const img = new Float32Array(N * 3);
  for (let i = 0; i < N; i++) img.set([0, Math.floor(i / side), i % side], i * 3);
  const feeds: Record<string, ort.Tensor> = {
    hidden_states: new ort.Tensor('float32', r(N * Number(cfg.in_channels ?? 64), 1), [1, N, Number(cfg.in_channels ?? 64)]),
    encoder_hidden_states: new ort.Tensor('float32', r(S * Number(cfg.joint_attention_dim), 2), [1, S, Number(cfg.joint_attention_dim)]),
    pooled_projections: new ort.Tensor('float32', r(Number(cfg.pooled_projection_dim), 3), [1, Number(cfg.pooled_projection_dim)]),
    timestep: new ort.Tensor('float32', Float32Array.of(0.5), [1]),
    img_ids: new ort.Tensor('float32', img, [N, 3]),
    txt_ids: new ort.Tensor('float32', new Float32Array(S * 3), [S, 3]),
  };
  if (cfg.guidance_embeds) feeds.guidance = new ort.Tensor('float32', Float32Array.of(3.5), [1]);
  return feeds;
};
const feeds = inputs(JSON.parse(readFileSync(join(values.model, 'config.json'), 'utf8')) as Record<string, unknown>);

const opCounts = (m: Model) => {
  const c = new Map<string, number>();
  for (const n of m.graph.nodes()) c.set(n.opType, (c.get(n.opType) ?? 0) + 1);
  return c;
};
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const tmp = mkdtempSync(join(tmpdir(), 'bench-fusions-'));
try {
  const configs = (['before', 'after'] as const).map((name) => ({ name, ...smashed(name) }));
  const sessions: ort.InferenceSession[] = [];
  for (const c of configs) {
    const optimized = join(tmp, `${c.name}.onnx`);
    sessions.push(await ort.InferenceSession.create(encodeModel(c.model), { graphOptimizationLevel: 'all', intraOpNumThreads: THREADS, logSeverityLevel: 3, optimizedModelFilePath: optimized }));
    const theirs = opCounts(loadModel(optimized));
    console.log(`${c.name}: fired ${JSON.stringify(c.fired)}\n  our graph ${c.model.graph.nodeCount} nodes (${[...opCounts(c.model)].filter(([k]) => /^(Mul|Add|Neg|Split|Concat|LayerNormalization|RotaryEmbedding)$/.test(k)).map(([k, v]) => `${k} ${v}`).join(', ')}); ORT-optimized ${[...theirs.values()].reduce((a, b) => a + b, 0)} nodes: ${[...theirs].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  const outs = [];
  for (const s of sessions) outs.push((await s.run(feeds))[s.outputNames[0]!]!.data as Float32Array);
  let num = 0;
  let den = 0;
  for (let i = 0; i < outs[0]!.length; i++) { num += (outs[1]![i]! - outs[0]![i]!) ** 2; den += outs[0]![i]! ** 2; }
  console.log(`relL2 after vs before: ${Math.sqrt(num / den).toExponential(2)} (int8's activation rounding amplifies any reordering; the float graphs agree within 1e-6)`);
  const cpu: number[][] = [[], []];
  const wall: number[][] = [[], []];
  for (let r = 0; r < RUNS; r++) {
    for (let i = 0; i < sessions.length; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await sessions[i]!.run(feeds);
      wall[i]!.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      cpu[i]!.push((c.user + c.system) / 1000);
    }
  }
  console.log(`one denoiser call, ${N} image + ${S} text tokens, ${THREADS} thread(s), medians of ${RUNS} interleaved runs:`);
  configs.forEach((c, i) => console.log(`  ${c.name.padEnd(7)} CPU ${median(cpu[i]!).toFixed(1)} ms (×${(median(cpu[0]!) / median(cpu[i]!)).toFixed(3)})  wall ${median(wall[i]!).toFixed(1)} ms (×${(median(wall[0]!) / median(wall[i]!)).toFixed(3)})`));
  for (const s of sessions) await s.release();

  if (values.profile) {
    for (const c of configs) {
      const prefix = join(tmp, `profile-${c.name}`);
      const s = await ort.InferenceSession.create(encodeModel(c.model), { graphOptimizationLevel: 'all', intraOpNumThreads: THREADS, logSeverityLevel: 3, enableProfiling: true, profileFilePrefix: prefix });
      for (let r = 0; r < RUNS + 2; r++) await s.run(feeds);
      s.endProfiling();
      await s.release();
      const file = readdirSync(tmp).find((f) => f.startsWith(`profile-${c.name}`) && f.endsWith('.json'))!;
      const events = JSON.parse(readFileSync(join(tmp, file), 'utf8')) as { cat: string; name: string; ts: number; dur: number; args: { op_name?: string } }[];
      const start = events.filter((e) => e.name === 'model_run')[2]!.ts; // after two warm-up runs
      const perNode = new Map<string, { op: string; d: number[] }>();
      for (const e of events) {
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time') || e.ts < start) continue;
        const n = perNode.get(e.name) ?? { op: e.args.op_name ?? '?', d: [] };
        n.d.push(e.dur);
        perNode.set(e.name, n);
      }
      const byOp = new Map<string, number>();
      for (const n of perNode.values()) byOp.set(n.op, (byOp.get(n.op) ?? 0) + median(n.d));
      const total = [...byOp.values()].reduce((a, b) => a + b, 0);
      console.log(`${c.name}: ORT profile, sum of per-node median kernel times ${(total / 1000).toFixed(1)} ms`);
      for (const [op, d] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.log(`  ${op.padEnd(30)} ${(d / 1000).toFixed(2).padStart(7)} ms ${((100 * d) / total).toFixed(1).padStart(5)}%`);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
