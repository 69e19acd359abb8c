// ortCompile's session settings, per denoiser call: the fused denoiser of a pipeline in sessions
// with different options, fed the same captured feeds, interleaved (the order reversed every
// round), medians and the ratio to the first variant, with the process CPU time, system time and
// minor page faults per call (CPU time holds on a loaded machine, wall time does not).
// Not a test: it measures and prints.
//   node --import tsx bench/ort-sessions.ts --model <pipeline> --width 32 --height 32 [--seq 32] [--rounds 200] [--variants dynamic,static]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadPipeline } from '../src/pipelines/loader.js';
import { defaultSessionOptions } from '../src/pipelines/loader.js';
import { loadModel } from '../src/ir/model-file.js';
import { fuse } from '../src/algorithms/compilers/ort-compile.js';
import { generationShapes } from '../src/algorithms/compilers/static-shapes.js';
import { Session, type Feed, type SessionOptions } from '../src/runtime/session.js';
import type { Denoiser } from '../src/pipelines/denoiser.js';

const { values } = parseArgs({ options: {
  model: { type: 'string' }, width: { type: 'string' }, height: { type: 'string' }, seq: { type: 'string' },
  rounds: { type: 'string' }, variants: { type: 'string' }, cache: { type: 'string' },
} });
const width = Number(values.width ?? 32), height = Number(values.height ?? 32), rounds = Number(values.rounds ?? 200);
const maxSequenceLength = values.seq ? Number(values.seq) : undefined;
const pipe = await loadPipeline(values.model!, values.cache ? { cacheDir: values.cache } : {});
const name = pipe.className === 'FluxPipeline' || pipe.className === 'StableDiffusion3Pipeline' ? 'transformer' : 'unet';
// the feeds of the first denoiser call of a one-step generation
let feeds: Record<string, Feed> | undefined;
const inner = pipe.denoiser;
pipe.denoiser = { inputNames: inner.inputNames, outputNames: inner.outputNames, prepare: (f) => inner.prepare(f), reset: (s) => inner.reset(s),
  predict: (f, c, r) => { feeds ??= { ...f }; return inner.predict(f, c, r); } } as Denoiser;
await pipe.generate({ prompt: 'a large red circle at the center on a blue background', width, height, steps: 1, ...(maxSequenceLength ? { maxSequenceLength } : {}), seed: 1 });
const shapes = generationShapes(pipe, { width, height, maxSequenceLength })[name]!;
console.log(`${name}: static shapes ${JSON.stringify(shapes)}; feeds ${Object.entries(feeds!).map(([k, v]) => `${k} [${v.dims}]`).join(', ')}`);
await pipe.release();

const noGemm = { 'optimization.disable_specified_optimizers': 'MatMulAddFusion' };
const VARIANTS: Record<string, SessionOptions> = {
  dynamic: {},
  static: { staticShapes: shapes },
  'static-nogemm': { staticShapes: shapes, configEntries: noGemm },
  'arena-on': { memArena: true },
  'no-spin': { configEntries: { 'session.intra_op.allow_spinning': '0' } },
  daz: { configEntries: { 'session.set_denormal_as_zero': '1' } },
  parallel: { executionMode: 'parallel' },
  t1: { threads: 1 },
  't1-static': { threads: 1, staticShapes: shapes },
  't1-static-nogemm': { threads: 1, staticShapes: shapes, configEntries: noGemm },
};
const names = (values.variants ?? 'dynamic,static').split(',');
for (const v of names) if (!VARIANTS[v]) throw new Error(`unknown variant ${v} (known: ${Object.keys(VARIANTS).join(', ')})`);
const file = join(pipe.source.onnxDir, name, 'model.onnx');
const sessions: Session[] = [];
for (const v of names) {
  const m = loadModel(file);
  fuse(m, 'cpu');
  const t0 = performance.now();
  sessions.push(await Session.create(m, { ...defaultSessionOptions('denoiser'), ...VARIANTS[v] }));
  console.log(`${v}: session created in ${(performance.now() - t0).toFixed(0)} ms`);
}
const wall: number[][] = names.map(() => []);
const cpu: { user: number; sys: number; faults: number }[][] = names.map(() => []);
for (let i = 0; i < 2; i++) for (const s of sessions) await s.run(feeds!); // warm-up
for (let r = 0; r < rounds; r++) {
  const order = r % 2 ? [...names.keys()].reverse() : [...names.keys()];
  for (const i of order) {
    const u0 = process.resourceUsage();
    wall[i]!.push((await sessions[i]!.run(feeds!)).ms);
    const u1 = process.resourceUsage();
    cpu[i]!.push({ user: (u1.userCPUTime - u0.userCPUTime) / 1000, sys: (u1.systemCPUTime - u0.systemCPUTime) / 1000, faults: u1.minorPageFault - u0.minorPageFault });
  }
}
const q = (a: number[], f: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * f))]!;
const base = q(wall[0]!, 0.5);
for (const [i, v] of names.entries()) {
  const t = wall[i]!;
  const c = cpu[i]!;
  console.log(`${v.padEnd(18)} median ${q(t, 0.5).toFixed(2)} ms (p10 ${q(t, 0.1).toFixed(2)}, p90 ${q(t, 0.9).toFixed(2)})  ×${(base / q(t, 0.5)).toFixed(3)}  ` +
    `CPU user ${q(c.map((x) => x.user), 0.5).toFixed(1)} ms, sys ${q(c.map((x) => x.sys), 0.5).toFixed(1)} ms, minor faults ${q(c.map((x) => x.faults), 0.5)}`);
}
for (const s of sessions) await s.release();
