// `npm run bench`: seconds per image of the bundled trained pipelines (test/fixtures/trained)
// through the built library (dist/). Each configuration: one warm-up generation, then
// `--repeat` (default 7) timed ones; reports medians. The machines are shared and noisy:
// compare only ratios measured in the same run. Writes bench/results/latest.json.
//   node bench/run.mjs [--repeat N] [--threads N]
// Conversion memory (860M-parameter UNet, fp16 -> float32 ONNX) is a separate, heavy script:
//   node bench/convert-memory.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { loadPipeline } = await import(join(root, 'dist', 'pipelines', 'index.js'));
const { values } = parseArgs({ options: { repeat: { type: 'string', default: '7' }, threads: { type: 'string' } } });
const repeat = Number(values.repeat);
const threads = values.threads ? Number(values.threads) : undefined;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const workloads = [
  { name: 'shapes-sd', prompt: 'a large red circle at the center on a blue background', options: { steps: 25, guidanceScale: 7.5, width: 32, height: 32 } },
  { name: 'shapes-flux', prompt: 'a large red circle at the center on a black background', options: { steps: 28, maxSequenceLength: 32, width: 32, height: 32 } },
];

const results = [];
for (const w of workloads) {
  const pipe = await loadPipeline(join(root, 'test', 'fixtures', 'trained', w.name), { threads });
  await pipe.generate({ prompt: w.prompt, seed: 0, ...w.options });
  const totals = [];
  const steps = [];
  const denoise = [];
  const decode = [];
  for (let i = 0; i < repeat; i++) {
    const r = await pipe.generate({ prompt: w.prompt, seed: i, ...w.options });
    totals.push(r.timings.totalMs);
    denoise.push(r.timings.denoiseMs);
    decode.push(r.timings.decodeMs);
    steps.push(...r.timings.stepsMs);
  }
  await pipe.release();
  const row = { pipeline: w.name, steps: w.options.steps, size: `${w.options.width}x${w.options.height}`, repeat, medianTotalMs: median(totals), medianStepMs: median(steps), medianDenoiseMs: median(denoise), medianDecodeMs: median(decode) };
  results.push(row);
  console.log(`${w.name}: ${row.steps} steps ${row.size}: median ${row.medianTotalMs.toFixed(0)} ms/image, ${row.medianStepMs.toFixed(1)} ms/step (denoise ${row.medianDenoiseMs.toFixed(0)} ms, decode ${row.medianDecodeMs.toFixed(0)} ms), ${repeat} runs`);
}
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'latest.json'), `${JSON.stringify({ date: new Date().toISOString(), cores: availableParallelism(), node: process.version, threads: threads ?? 'default', results }, null, 2)}\n`);
