// Peak memory and time of one generation per session configuration, each in its own process
// (peak RSS is per process: VmHWM), on a converted ONNX pipeline folder, e.g. a full-size SD 1.5:
//   node bin/smash.js create-random --pipeline sd15 --dtype fp16 --out /tmp/sd15
//   node bin/smash.js convert /tmp/sd15 --out /tmp/sd15-onnx
//   node bench/memory.mjs --model /tmp/sd15-onnx [--width 512 --height 512 --steps 2] [--config name,...] [--allocator-env]
// Runs the configurations one after another (never in parallel: each holds the whole pipeline)
// and writes bench/results/memory.json. Weights = the bytes of the ONNX files the pipeline loads.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    model: { type: 'string' }, width: { type: 'string' }, height: { type: 'string' }, steps: { type: 'string' },
    guidance: { type: 'string' }, config: { type: 'string' }, child: { type: 'string' }, threads: { type: 'string' },
    'max-sequence-length': { type: 'string' }, out: { type: 'string' },
    // children run under the allocator settings the CLI's --low-memory sets (default: glibc's, as a program gets)
    'allocator-env': { type: 'boolean' },
  },
});

/** Session configurations: loadPipeline options. `ort-default` is onnxruntime's defaults (the old ones). */
const CONFIGS = {
  'ort-default': { session: { memArena: true }, fuseAttention: false },
  default: {},
  'unfused-attention': { fuseAttention: false },
  'cfg-split': { generate: { cfgMode: 'split' } },
  'arena-on': { session: { memArena: true } },
  'no-mem-pattern': { session: { memPattern: false } },
  'no-prepacking': { session: { configEntries: { 'session.disable_prepacking': '1' } } },
  'arena+device-allocator-initializers': { session: { memArena: true, configEntries: { 'session.use_device_allocator_for_initializers': '1' } } },
  'low-memory': { lowMemory: true },
  'no-mem-pattern+cfg-split': { session: { memPattern: false }, generate: { cfgMode: 'split' } },
  'low-memory+cfg-split': { lowMemory: true, generate: { cfgMode: 'split' } },
  'vae-tiling-512': { generate: { vaeTiling: { tileSampleSize: 512 } } },
};

if (values.child) {
  const { loadPipeline } = await import(join(root, 'dist', 'index.js'));
  const { peakRssBytes, rssBytes } = await import(join(root, 'dist', 'runtime', 'memory.js'));
  const { generate: genOpts, ...cfg } = CONFIGS[values.child];
  const threads = values.threads ? Number(values.threads) : undefined;
  const baseRss = rssBytes();
  const t0 = performance.now();
  const pipe = await loadPipeline(values.model, { ...cfg, threads });
  const loadMs = performance.now() - t0;
  const afterLoad = rssBytes();
  const opts = {
    prompt: 'a red fox in the snow', seed: 1, steps: Number(values.steps ?? 2),
    width: Number(values.width ?? 512), height: Number(values.height ?? 512),
    ...(values.guidance ? { guidanceScale: Number(values.guidance) } : {}),
    ...(values['max-sequence-length'] ? { maxSequenceLength: Number(values['max-sequence-length']) } : {}),
  };
  const cpu0 = process.cpuUsage();
  const r = await pipe.generate({ ...opts, ...genOpts });
  const cpu = process.cpuUsage(cpu0);
  const afterGenerate = rssBytes();
  process.stdout.write(`${JSON.stringify({
    config: values.child, mallocEnv: process.env.MALLOC_MMAP_THRESHOLD_ ?? null, nodeBaselineRssBytes: baseRss, loadMs, afterLoadRssBytes: afterLoad, afterGenerateRssBytes: afterGenerate,
    peakRssBytes: peakRssBytes(), timings: r.timings, cpuMs: (cpu.user + cpu.system) / 1000,
  })}\n`);
  await pipe.release();
  process.exit(0);
}

if (!values.model) {
  console.error('usage: node bench/memory.mjs --model <onnx pipeline folder> [--width N --height N --steps N --config a,b]');
  process.exit(2);
}
function weightBytes(dir) {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    // text-to-image pipelines never load the VAE encoder
    if (e.isDirectory()) n += e.name === 'vae_encoder' ? 0 : weightBytes(p);
    else if (/\.onnx(_data(\.\d+)?)?$/.test(e.name)) n += statSync(p).size;
  }
  return n;
}
const weights = weightBytes(values.model);
// each child runs as the `smash` CLI does: under the allocator settings (src/runtime/memory.ts)
const { allocatorEnv } = await import(join(root, 'dist', 'runtime', 'memory.js'));
const childEnv = { ...process.env, ...(values['allocator-env'] ? allocatorEnv() : {}) };
const names = values.config ? values.config.split(',') : Object.keys(CONFIGS);
const gib = (b) => (b / 2 ** 30).toFixed(2);
const rows = [];
console.log(`${values.model}: weights ${gib(weights)} GiB`);
for (const name of names) {
  if (!CONFIGS[name]) throw new Error(`unknown configuration ${name} (${Object.keys(CONFIGS).join(', ')})`);
  const args = [fileURLToPath(import.meta.url), '--child', name, ...process.argv.slice(2).filter((a, i, all) => a !== '--config' && all[i - 1] !== '--config')];
  const p = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: childEnv });
  if (p.status !== 0) {
    console.log(`${name}: failed (exit ${p.status ?? p.signal})`);
    rows.push({ config: name, failed: p.status ?? p.signal });
    continue;
  }
  const r = JSON.parse(p.stdout.trim().split('\n').pop());
  const s = r.timings.peakRssBytes;
  console.log(
    `${name.padEnd(36)} peak ${gib(r.peakRssBytes)} GiB (weights + ${gib(r.peakRssBytes - weights)}), after load ${gib(r.afterLoadRssBytes)}, after generate ${gib(r.afterGenerateRssBytes)}; ` +
      `stages: text ${gib(s.textEncode)} / denoise ${gib(s.denoise)} / decode ${gib(s.decode)} GiB; ` +
      `load ${(r.loadMs / 1000).toFixed(1)} s, image ${(r.timings.totalMs / 1000).toFixed(1)} s, CPU ${(r.cpuMs / 1000).toFixed(1)} s (wall: text ${(r.timings.textEncodeMs / 1000).toFixed(1)}, denoise ${(r.timings.denoiseMs / 1000).toFixed(1)}, decode ${(r.timings.decodeMs / 1000).toFixed(1)})`,
  );
  rows.push({ ...r, weightBytes: weights });
}
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
const out = values.out ?? join(root, 'bench', 'results', 'memory.json');
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, model: resolve(values.model), args: process.argv.slice(2), weightBytes: weights, results: rows }, null, 2)}\n`);
