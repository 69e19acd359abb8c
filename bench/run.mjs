// `npm run bench`: seconds per image of the bundled trained pipelines (test/fixtures/trained)
// through the built library (dist/), unsmashed (the baseline: our conversion on onnxruntime with
// its default session options) and with each algorithm alone at its defaults. Runs are
// interleaved (one generation of every configuration per round) so that the shared machine's
// noise falls on all alike; reports medians, ratios to the baseline of the same run, and the
// PSNR of each configuration's pictures against the baseline's (same prompts and seeds).
// Writes bench/results/latest.json.
//   node bench/run.mjs [--repeat N] [--threads N] [--quick]
// Conversion memory (860M-parameter UNet, fp16 -> float32 ONNX) is a separate, heavy script:
//   node bench/convert-memory.mjs
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { loadPipeline, smash } = await import(join(root, 'dist', 'index.js'));
const { psnrDb } = await import(join(root, 'dist', 'eval', 'metrics.js'));
const { values } = parseArgs({ options: { repeat: { type: 'string' }, threads: { type: 'string' }, quick: { type: 'boolean' } } });
const repeat = Number(values.repeat ?? (values.quick ? 3 : 7));
const threads = values.threads ? Number(values.threads) : undefined;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The CPU model and the ISA flags that decide int8 and float speed. */
function machine() {
  let flags = [];
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = (line?.split(':')[1] ?? '').trim().split(/\s+/).filter((f) => /^(avx2|avx512f|avx512_vnni|avx_vnni|avx512_bf16|avx512_fp16|amx_int8|amx_bf16|fma)$/.test(f));
  } catch {
    // not Linux: the model name alone
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), flags };
}

const workloads = [
  { name: 'shapes-sd', prompts: ['a large red circle at the center on a blue background', 'a small green triangle at the top on a black background'], options: { steps: 25, guidanceScale: 7.5, width: 32, height: 32 } },
  { name: 'shapes-flux', prompts: ['a large red circle at the center on a black background', 'a small yellow square at the left on a gray background'], options: { steps: 28, maxSequenceLength: 32, width: 32, height: 32 } },
];
// int8Static calibrates on the workload's own prompts (other seeds than the measured runs);
// 'ort-default-sessions' is onnxruntime's own session options (CPU arena on) beside ours (baseline)
const configsFor = (w) => (values.quick
  ? { baseline: null, 'ort-default-sessions': 'ort-default', int8Dynamic: { int8Dynamic: {} }, ortCompile: { ortCompile: {} } }
  : {
    baseline: null, 'ort-default-sessions': 'ort-default', qkv: { qkv: {} }, int8Dynamic: { int8Dynamic: {} },
    int8Static: { int8Static: { calibrationPrompts: w.prompts, calibrationSteps: 10, calibrationWidth: w.options.width, calibrationHeight: w.options.height, calibrationMaxSequenceLength: w.options.maxSequenceLength } },
    int8WeightOnly: { int8WeightOnly: {} }, int4WeightOnly: { int4WeightOnly: {} }, fp16: { fp16: {} }, ortCompile: { ortCompile: {} },
  });

const results = [];
for (const w of workloads) {
  const base = await loadPipeline(join(root, 'test', 'fixtures', 'trained', w.name), { threads });
  const pipes = {};
  const loadMs = {};
  for (const [name, cfg] of Object.entries(configsFor(w))) {
    const t0 = performance.now();
    // the old defaults: onnxruntime's own session options (CPU arena on), against ours (baseline)
    pipes[name] = cfg === 'ort-default' ? await loadPipeline(join(root, 'test', 'fixtures', 'trained', w.name), { threads, session: { memArena: true } }) : cfg ? await smash(base, cfg, { threads }) : base;
    loadMs[name] = performance.now() - t0;
  }
  // warm-up, and the pictures fidelity is measured on
  const pictures = {};
  for (const [name, p] of Object.entries(pipes)) {
    pictures[name] = [];
    for (const [i, prompt] of w.prompts.entries()) pictures[name].push((await p.generate({ prompt, seed: i, ...w.options })).images.data);
  }
  const times = Object.fromEntries(Object.keys(pipes).map((k) => [k, { total: [], step: [], denoise: [], decode: [], text: [], peak: [] }]));
  for (let r = 0; r < repeat; r++) {
    for (const [name, p] of Object.entries(pipes)) {
      const res = await p.generate({ prompt: w.prompts[r % w.prompts.length], seed: r, ...w.options });
      const t = times[name];
      t.total.push(res.timings.totalMs);
      t.denoise.push(res.timings.denoiseMs);
      t.decode.push(res.timings.decodeMs);
      t.text.push(res.timings.textEncodeMs);
      t.step.push(...res.timings.stepsMs);
      const pk = res.timings.peakRssBytes;
      t.peak.push(Math.max(pk.textEncode, pk.denoise, pk.decode));
    }
  }
  const baseMs = median(times.baseline.total);
  for (const [name, t] of Object.entries(times)) {
    const psnr = pictures[name].map((img, i) => psnrDb(img, pictures.baseline[i]));
    const row = {
      pipeline: w.name, config: name, steps: w.options.steps, size: `${w.options.width}x${w.options.height}`, repeat,
      medianTotalMs: median(t.total), medianStepMs: median(t.step), medianTextEncodeMs: median(t.text), medianDenoiseMs: median(t.denoise), medianDecodeMs: median(t.decode),
      speedup: baseMs / median(t.total),
      // the process's RSS during this configuration's generations: every configuration's weights are resident (bench/memory.mjs measures one pipeline per process)
      maxPeakRssBytes: Math.max(...t.peak), oneTimeMs: name === 'baseline' ? 0 : loadMs[name], minPsnrDb: Math.min(...psnr),
    };
    results.push(row);
    console.log(`${w.name} ${name.padEnd(15)} ${row.medianTotalMs.toFixed(0).padStart(5)} ms/image ${row.medianStepMs.toFixed(1).padStart(6)} ms/step  ×${row.speedup.toFixed(2)}  text ${row.medianTextEncodeMs.toFixed(0)} / denoise ${row.medianDenoiseMs.toFixed(0)} / decode ${row.medianDecodeMs.toFixed(0)} ms  peak RSS ${(row.maxPeakRssBytes / 2 ** 20).toFixed(0)} MiB  PSNR ≥ ${Number.isFinite(row.minPsnrDb) ? row.minPsnrDb.toFixed(1) : '∞'} dB  (smash ${row.oneTimeMs.toFixed(0)} ms once)`);
  }
  for (const [name, p] of Object.entries(pipes)) if (name !== 'baseline') await p.release();
  await base.release();
}
const m = machine();
console.log(`${m.cpu}, ${m.cores} cores, ${m.flags.join(' ')}; ${repeat} interleaved runs per configuration`);
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'latest.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: m, node: process.version, threads: threads ?? 'default', repeat, results }, null, 2)}\n`);
