// sd15-unet-full: the full-size SD 1.5 UNet (860M parameters, fp16 weights as released) converted
// to float32 ONNX, loaded, and called once at 512×512 with classifier-free guidance (batch 2), in
// a process of its own so its peak RSS (VmHWM) is this workload's alone. Prints one JSON line.
// run.mjs spawns it; by hand: node bench/unet-full.mjs [--calls N] [--threads N]
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureWorkload, WORKLOADS } from './workloads.mjs';
import { denoiserFlops } from './floor.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lib = await import(join(root, 'dist', 'index.js'));
const { values } = parseArgs({ options: { calls: { type: 'string' }, threads: { type: 'string' } } });
const calls = Number(values.calls ?? 1);
const threads = values.threads ? Number(values.threads) : undefined;
const status = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;

const w = WORKLOADS['sd15-unet-full'];
const src = ensureWorkload('sd15-unet-full', (m) => console.error(m));
const onnxDir = `${src.dir}-onnx`;
let convertMs = 0;
if (!existsSync(join(onnxDir, 'model.onnx'))) {
  const t0 = performance.now();
  lib.convert(src.dir, onnxDir);
  convertMs = performance.now() - t0;
}
const weightBytes = readdirSync(onnxDir).reduce((a, f) => a + statSync(join(onnxDir, f)).size, 0);
const file = join(onnxDir, 'model.onnx');
const { batch, width, height } = w.generation;
const h = height / 8;
const wd = width / 8;
const shapes = { sample: [batch, 4, h, wd], timestep: [batch], encoder_hidden_states: [batch, 77, 768] };
const flops = denoiserFlops(file, shapes);

const rssBefore = status('VmRSS');
let t0 = performance.now();
// as our loader gives a pipeline's UNet: attention fused into MultiHeadAttention (no score
// tensor) and its session defaults (pipelines/loader.ts defaultSessionOptions: CPU arena off)
const { fuseAttention } = await import(join(root, 'dist', 'runtime', 'attention.js'));
const model = lib.loadModel(file);
fuseAttention(model, 'cpu');
const session = await lib.Session.create(model, { threads, memArena: false });
const loadMs = performance.now() - t0;
const rssLoaded = status('VmRSS');
const rand = (n, seed) => new lib.Generator(seed).randn(n);
const feeds = {
  sample: { dtype: 'float32', dims: shapes.sample, data: rand(batch * 4 * h * wd, 1) },
  timestep: { dtype: 'float32', dims: [batch], data: new Float32Array(batch).fill(981) },
  encoder_hidden_states: { dtype: 'float32', dims: shapes.encoder_hidden_states, data: rand(batch * 77 * 768, 2) },
};
const callMs = [];
for (let i = 0; i < calls; i++) {
  t0 = performance.now();
  await session.run(feeds);
  callMs.push(performance.now() - t0);
}
await session.release();
console.log(JSON.stringify({
  workload: 'sd15-unet-full', parameters: src.parameters, buildMs: src.buildMs, convertMs, weightBytes, loadMs, callMs,
  rssBeforeLoad: rssBefore, rssLoaded, peakRss: status('VmHWM'), flops, shapes,
}));
