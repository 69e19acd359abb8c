// onnxruntime's session options per component, by measurement: each component of a converted
// pipeline in its own process (peak RSS is per process), loaded as the pipeline loads it (attention
// fused), run at a generation's shapes, for {arena on/off} × {memory patterns on/off} ×
// {prepacking on/off}. Per configuration: RSS of the loaded session over the process before it,
// the peak of its runs over that (the kernel's VmHWM, reset after loading), RSS kept after the
// runs, and time per call (median of the calls, the first included; wall and CPU seconds: CPU time
// holds on a loaded machine, wall time does not). Not a test: it measures and prints; each
// configuration's figures go to the output file as soon as they are taken.
//   npm run build && node bench/session-options.mjs --model <onnx folder> [--component unet,...]
//     [--width 512 --height 512] [--calls 3] [--config arena-off+pattern+prepack,...] [--out file.json]
// Each component's initializers are also counted by the op that reads them and their dtype
// (`weightBytesByOp`, e.g. Conv:float32, DequantizeLinear:int8): a weight held twice, float and
// int8, shows as both.
// Arena shrinkage (`memory.enable_memory_arena_shrinkage`) is a run option: onnxruntime-node 1.30's
// binding reads only `logSeverityLevel` and `tag` from run options (js/node/src/run_options_helper.cc),
// so it cannot be measured from Node.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    model: { type: 'string' }, component: { type: 'string' }, width: { type: 'string' }, height: { type: 'string' },
    calls: { type: 'string' }, config: { type: 'string' }, child: { type: 'string' }, out: { type: 'string' },
    batch: { type: 'string' }, seq: { type: 'string' },
  },
});

/** name -> session options; the first is the pipeline's default (loader.ts's defaultSessionOptions) */
const CONFIGS = {};
for (const arena of [false, true]) for (const pattern of [true, false]) for (const prepack of [true, false]) {
  const name = `arena-${arena ? 'on' : 'off'}+${pattern ? 'pattern' : 'no-pattern'}+${prepack ? 'prepack' : 'no-prepack'}`;
  CONFIGS[name] = { memArena: arena, memPattern: pattern, ...(prepack ? {} : { configEntries: { 'session.disable_prepacking': '1' } }) };
}
const width = Number(values.width ?? 512), height = Number(values.height ?? 512);
const batch = Number(values.batch ?? 2), seq = Number(values.seq ?? 77);
const gib = (b) => (b / 2 ** 30).toFixed(2);
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };

/** Feeds of one call at the generation's shapes: CFG batch for the text encoder and the UNet, one picture for the decoder. */
function feedsFor(component, inputs) {
  const dims = {
    batch_size: component === 'vae_decoder' ? 1 : batch, sequence_length: seq, steps: 1,
    height: height / 8, width: width / 8, latent_height: height / 8, latent_width: width / 8,
  };
  const feeds = {};
  for (const v of inputs) {
    const shape = v.shape.map((d) => {
      if (typeof d === 'number') return d;
      if (dims[d] === undefined) throw new Error(`${component}: input ${v.name} has a dimension '${d}' this benchmark does not know`);
      return dims[d];
    });
    const n = shape.reduce((a, b) => a * b, 1);
    if (v.dtype === 'int64') feeds[v.name] = { dtype: 'int64', dims: shape, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 49407)) };
    else if (v.dtype === 'int32') feeds[v.name] = { dtype: 'int32', dims: shape, data: Int32Array.from({ length: n }, (_, i) => i % 49407) };
    else {
      // a fixed pseudo-random pattern in [-1, 1) (timesteps: 500)
      const data = new Float32Array(n);
      if (v.name === 'timestep') data.fill(500);
      else for (let i = 0; i < n; i++) data[i] = ((i * 2654435761) % 2 ** 32) / 2 ** 31 - 1;
      feeds[v.name] = { dtype: 'float32', dims: shape, data };
    }
  }
  return feeds;
}

if (values.child) {
  const [component, config] = values.child.split(':');
  const { Session } = await import(join(root, 'dist', 'runtime', 'session.js'));
  const { loadModel } = await import(join(root, 'dist', 'ir', 'model-file.js'));
  const { fuseAttention } = await import(join(root, 'dist', 'runtime', 'attention.js'));
  const { peakRssBytes, resetPeakRss, rssBytes } = await import(join(root, 'dist', 'runtime', 'memory.js'));
  const base = rssBytes();
  const t0 = performance.now();
  const m = loadModel(join(values.model, component, 'model.onnx'));
  const weightBytesByOp = {};
  for (const v of m.graph.initializers.values()) {
    const key = `${[...v.uses][0]?.node.opType ?? 'unused'}:${v.const.dtype}`;
    weightBytesByOp[key] = (weightBytesByOp[key] ?? 0) + v.const.byteLength;
  }
  const fused = fuseAttention(m, 'cpu');
  const session = await Session.create(m, CONFIGS[config]);
  const loadMs = performance.now() - t0;
  const loadPeak = peakRssBytes();
  const afterLoad = rssBytes();
  const feeds = feedsFor(component, m.graph.inputs);
  const calls = Number(values.calls ?? 3);
  const wall = [], cpu = [], peaks = [];
  if (!resetPeakRss()) throw new Error('cannot reset the peak RSS (/proc/self/clear_refs): run on Linux');
  for (let i = 0; i < calls; i++) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    await session.run(feeds);
    wall.push(performance.now() - w0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    peaks.push(peakRssBytes());
  }
  const afterRuns = rssBytes();
  await session.release();
  process.stdout.write(`${JSON.stringify({
    component, config, fusedAttention: fused, weightBytesByOp, baseRssBytes: base, loadMs, loadPeakRssBytes: loadPeak, afterLoadRssBytes: afterLoad,
    runPeakRssBytes: Math.max(...peaks), afterRunsRssBytes: afterRuns, wallMs: wall, cpuMs: cpu,
  })}\n`);
  process.exit(0);
}

if (!values.model) throw new Error('--model <converted ONNX pipeline folder> is required');
const components = (values.component ?? 'text_encoder,unet,vae_decoder').split(',');
const configs = values.config ? values.config.split(',') : Object.keys(CONFIGS);
for (const c of configs) if (!CONFIGS[c]) throw new Error(`unknown configuration ${c} (known: ${Object.keys(CONFIGS).join(', ')})`);
const weightBytes = (dir) => readdirSync(dir).filter((f) => f.startsWith('model.onnx')).reduce((a, f) => a + statSync(join(dir, f)).size, 0);
const results = [];
const out = values.out ?? join(root, 'bench', 'results', 'session-options.json');
mkdirSync(dirname(out), { recursive: true });
for (const component of components) {
  const weights = weightBytes(join(values.model, component));
  console.log(`${component}: ${gib(weights)} GiB of weights in its files; ${width}×${height}`);
  for (const config of configs) {
    const args = [fileURLToPath(import.meta.url), '--child', `${component}:${config}`, '--model', values.model, '--width', String(width), '--height', String(height)];
    for (const k of ['calls', 'batch', 'seq']) if (values[k]) args.push(`--${k}`, values[k]);
    const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (p.status !== 0) {
      console.log(`  ${config}: failed (${p.status}) ${p.stderr.split('\n').filter(Boolean).slice(-3).join(' | ')}`);
      continue;
    }
    const r = JSON.parse(p.stdout.trim().split('\n').pop());
    r.weightBytes = weights;
    results.push(r);
    if (config === configs[0]) {
      const by = Object.entries(r.weightBytesByOp).sort((a, b) => b[1] - a[1]).filter(([, b]) => b >= 2 ** 20);
      console.log(`  initializers by reading op (≥ 1 MiB): ${by.map(([k, b]) => `${k} ${(b / 2 ** 30).toFixed(3)}`).join(', ')} GiB`);
    }
    console.log(`  ${config.padEnd(34)} loaded +${gib(r.afterLoadRssBytes - r.baseRssBytes)} GiB (load peak +${gib(r.loadPeakRssBytes - r.baseRssBytes)}), ` +
      `peak +${gib(Math.max(r.loadPeakRssBytes, r.runPeakRssBytes) - r.baseRssBytes)}, runs peak +${gib(r.runPeakRssBytes - r.afterLoadRssBytes)} over loaded, kept +${gib(r.afterRunsRssBytes - r.afterLoadRssBytes)}; ` +
      `per call ${(median(r.wallMs) / 1000).toFixed(2)} s wall, ${(median(r.cpuMs) / 1000).toFixed(2)} s CPU (median of ${r.wallMs.length}; first ${(r.wallMs[0] / 1000).toFixed(2)} s); load ${(r.loadMs / 1000).toFixed(1)} s`);
    writeFileSync(out, `${JSON.stringify({ model: values.model, width, height, batch, seq, results }, null, 2)}\n`);
  }
}
console.log(`wrote ${out}`);
