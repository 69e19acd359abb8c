// `npm run bench`: issue 13's benchmark. Workloads at realistic layouts (bench/workloads.mjs,
// built with create-random and cached), each configuration (the baseline, each algorithm alone at
// its defaults, the recipes) in one process, interleaved round by round with the same run's
// baseline so that the shared machine's noise falls on all alike. Per configuration: median
// seconds per image, ratio to the baseline, per-stage medians (text encode, denoise, decode), the
// one-time smash cost apart, resident memory; the floor (the denoiser's FLOPs over the GEMM
// throughput measured here) and each configuration's distance from it; the recipes' fidelity on
// the trained shapes pipelines through the evaluation agent (PSNR, SSIM). Writes
// bench/results/run-<date>.json and bench/results/latest.json; `node bench/readme-table.mjs`
// puts the latest into the README. See bench/README.md.
//   node bench/run.mjs [--quick] [--repeat N] [--threads N] [--workload a,b] [--config a,b]
//                      [--group N] [--no-fidelity] [--peer diffusers --python <python>]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ensureWorkload, WORKLOADS } from './workloads.mjs';
import { denoiserFlops, measureGemm } from './floor.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { loadPipeline, smash, SmashConfig } = await import(join(root, 'dist', 'index.js'));
const { psnrDb } = await import(join(root, 'dist', 'eval', 'metrics.js'));
const { initialLatents } = await import(join(root, 'dist', 'eval', 'agent.js'));
const { rssBytes } = await import(join(root, 'dist', 'runtime', 'memory.js'));
const { defaultSessionOptions } = await import(join(root, 'dist', 'pipelines', 'loader.js'));

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean' }, repeat: { type: 'string' }, threads: { type: 'string' }, workload: { type: 'string' },
    config: { type: 'string' }, group: { type: 'string' }, 'no-fidelity': { type: 'boolean' }, peer: { type: 'string' }, python: { type: 'string' },
  },
});
const quick = !!values.quick;
const repeat = Number(values.repeat ?? (quick ? 2 : 5));
const threads = values.threads ? Number(values.threads) : undefined;
// configurations loaded at once beside the baseline (each holds a whole pipeline in memory)
const groupSize = Number(values.group ?? 4);
const started = performance.now();
const log = (m) => console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}`);

// a collection before each RSS reading, so that a configuration's figure is its sessions, not garbage
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const settledRss = () => {
  gc();
  return rssBytes();
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : NaN;
};

/** The CPU model and the ISA flags that decide int8 and float speed. */
function machine() {
  let flags = [];
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    flags = (line?.split(':')[1] ?? '').trim().split(/\s+/).filter((f) => /^(avx2|fma|avx512f|avx512bw|avx512_vnni|avx_vnni|avx512_bf16|avx512_fp16|amx_int8|amx_bf16|amx_tile)$/.test(f));
  } catch {
    // not Linux: the model name alone
  }
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), memoryGiB: Math.round(totalmem() / 2 ** 30), flags };
}

// ------------------------------------------------------------------ configurations

const SHAPES_PROMPTS = {
  sd: ['a large red circle at the center on a blue background', 'a small green triangle at the top on a black background'],
  flux: ['a large red circle at the center on a black background', 'a small yellow square at the left on a gray background'],
};
const BENCH_PROMPTS = ['a red fox in the snow', 'a lighthouse on a cliff at sunset, oil painting'];

/**
 * The recipes of issue 13, per pipeline kind: `kept` is the one the README reports as the recipe
 * (the variants beside it are what it was chosen against). int8Dynamic on the text encoders too
 * (`components`) is measured as its own variant.
 */
function recipes(kind, calibrationPrompts) {
  const te = ['denoiser', 'text_encoder'];
  if (kind === 'flux') {
    return {
      'recipe: fora+int8Dynamic+qkv+ortCompile': { fora: {}, int8Dynamic: {}, qkv: {}, ortCompile: {} },
      'recipe: fora+int8Dynamic(+text encoders)+qkv+ortCompile': { fora: {}, int8Dynamic: { components: te }, qkv: {}, ortCompile: {} },
      'recipe: fbcache+int8Dynamic+qkv+ortCompile': { fbcache: {}, int8Dynamic: {}, qkv: {}, ortCompile: {} },
      'recipe: teacache+int8Dynamic+qkv+ortCompile': { teacache: {}, int8Dynamic: {}, qkv: {}, ortCompile: {} },
    };
  }
  const calib = { calibrationPrompts, calibrationSteps: 10 };
  return {
    'recipe: deepcache+int8Dynamic+ortCompile': { deepcache: {}, int8Dynamic: {}, ortCompile: {} },
    'recipe: deepcache+int8Dynamic(+text encoder)+ortCompile': { deepcache: {}, int8Dynamic: { components: te }, ortCompile: {} },
    'recipe: deepcache+int8Static+ortCompile': { deepcache: {}, int8Static: calib, ortCompile: {} },
  };
}

function singles(kind, calibrationPrompts) {
  const calib = { calibrationPrompts, calibrationSteps: 10 };
  const common = {
    qkv: { qkv: {} }, int8Dynamic: { int8Dynamic: {} }, int8Static: { int8Static: calib }, int8WeightOnly: { int8WeightOnly: {} },
    int4WeightOnly: { int4WeightOnly: {} }, fp16: { fp16: {} }, ortCompile: { ortCompile: {} },
  };
  const cachers = kind === 'flux'
    ? { fora: { fora: {} }, fbcache: { fbcache: {} }, teacache: { teacache: {} }, taylorseer: { taylorseer: {} }, pab: { pab: {} } }
    : { deepcache: { deepcache: {} }, pab: { pab: {} } };
  return { ...common, ...cachers };
}

const OLD_DEFAULTS = 'old defaults (arena on, attention unfused)';

/** name → SmashConfig input (null: the baseline; OLD_DEFAULTS: the loader's former session defaults), for one workload. */
function configsFor(kind, calibrationPrompts) {
  const r = recipes(kind, calibrationPrompts);
  let all;
  if (quick) {
    // the one-time smash cost (a whole pipeline loaded again per configuration) is most of a quick
    // run: the recipes only, so that it stays under 10 minutes with the peer (issue 13)
    const names = kind === 'flux'
      ? ['recipe: fora+int8Dynamic+qkv+ortCompile', 'recipe: fora+int8Dynamic(+text encoders)+qkv+ortCompile', 'recipe: fbcache+int8Dynamic+qkv+ortCompile']
      : ['recipe: deepcache+int8Dynamic+ortCompile', 'recipe: deepcache+int8Static+ortCompile'];
    all = Object.fromEntries(names.map((n) => [n, r[n]]));
  } else all = { ...r, ...singles(kind, calibrationPrompts) };
  if (values.config) {
    const want = values.config.split(',');
    all = Object.fromEntries(Object.entries(all).filter(([n]) => want.some((w) => n === w || n.includes(w))));
  }
  // issue 17: the loader's defaults before the memory work (onnxruntime's CPU arena on, attention
  // unfused), beside today's (the baseline), so the price or gain of the new defaults shows
  const old = !values.config || values.config.split(',').some((w) => OLD_DEFAULTS.includes(w)) ? { [OLD_DEFAULTS]: OLD_DEFAULTS } : {};
  return { baseline: null, ...old, ...all };
}

// ------------------------------------------------------------------ the peer (diffusers)

async function openPeers(w, dir) {
  if (values.peer === undefined) return [];
  if (values.peer !== 'diffusers') {
    console.log(`--peer ${values.peer}: unknown peer (diffusers is the one there is); skipped`);
    return [];
  }
  const file = join(root, 'bench', 'peer', 'diffusers.mjs');
  if (!existsSync(file)) {
    console.log(`--peer diffusers: ${file} is missing (it is being written separately); skipped`);
    return [];
  }
  const python = values.python ?? process.env.SMASH_PEER_PYTHON ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import torch, diffusers, transformers'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    console.log(`--peer diffusers: ${python} cannot import torch, diffusers and transformers (${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()}); skipped (see bench/README.md)`);
    return [];
  }
  const { openPeer } = await import(pathToFileURL(file).href);
  const peers = [];
  // --quick: bfloat16 only, what the target compares with (float32 is the slowest member of a round)
  for (const dtype of quick ? ['bfloat16'] : ['float32', 'bfloat16']) {
    try {
      peers.push({ name: `diffusers ${dtype}`, peer: await openPeer({ python, modelDir: dir, kind: w.kind, dtype, threads }) });
    } catch (e) {
      console.log(`--peer diffusers (${dtype}): could not start (${e.message}); skipped`);
    }
  }
  return peers;
}

// ------------------------------------------------------------------ one pipeline workload

/** A member of a round: something that generates one image and says how long its stages took. */
function ourMember(name, pipe, gen) {
  return {
    name,
    async run(prompt, seed, latents) {
      const before = rssBytes();
      const res = await pipe.generate({ prompt, seed, latents, ...gen });
      const t = res.timings;
      const pk = t.peakRssBytes;
      const peak = Math.max(pk.textEncode, pk.denoise, pk.decode);
      return { totalMs: t.totalMs, text: t.textEncodeMs, denoise: t.denoiseMs, decode: t.decodeMs, calls: t.stepsMs.length, peak, transient: peak - before, images: res.images.data };
    },
  };
}

function peerMember(name, peer, w, gen) {
  return {
    name,
    async run(prompt, seed, latents) {
      const r = await peer.generate({
        prompt, negativePrompt: w.kind === 'sd' ? '' : undefined, width: gen.width, height: gen.height, steps: gen.steps,
        guidance: gen.guidanceScale, seed, latents: latents.data, maxSequenceLength: gen.maxSequenceLength,
      });
      return { totalMs: r.ms, text: r.stages.encode, denoise: r.stages.denoise, decode: r.stages.decode, calls: NaN, peak: NaN, transient: NaN, images: null };
    },
  };
}

async function pipelineWorkload(name, gemm) {
  const w = WORKLOADS[name];
  const gen = { ...w.generation };
  const src = ensureWorkload(name, log);
  let t0 = performance.now();
  const rss0 = settledRss();
  const base = await loadPipeline(src.dir, { threads });
  const baseLoadMs = performance.now() - t0;
  const baseRss = settledRss() - rss0;
  log(`${name}: ${src.dir} ${src.built ? `built in ${(src.buildMs / 1000).toFixed(1)} s, ` : ''}loaded (converted on first use) in ${(baseLoadMs / 1000).toFixed(1)} s`);
  const channels = w.kind === 'flux' ? 16 : 4;
  const latentsOf = (seed) => initialLatents(seed, channels, gen.height / 8, gen.width / 8);

  // the denoiser's input shapes and calls per image, from one probe generation (also the baseline's warm-up)
  const inner = base.denoiser;
  const probe = { calls: 0, dims: undefined };
  const predict = inner.predict;
  const own = Object.prototype.hasOwnProperty.call(inner, 'predict');
  inner.predict = function (feeds, ctx, req) {
    probe.calls++;
    probe.dims ??= Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, [...v.dims]]));
    return predict.call(this, feeds, ctx, req);
  };
  const baseMember = ourMember('baseline', base, gen);
  const warmBase = await baseMember.run(BENCH_PROMPTS[0], 0, latentsOf(0));
  if (own) inner.predict = predict;
  else delete inner.predict;
  const flops = denoiserFlops(join(base.source.onnxDir, w.denoiser, 'model.onnx'), probe.dims);
  const callsPerImage = probe.calls;
  const floor = {
    flopsPerCall: flops, callsPerImage,
    fp32DenoiseMs: (callsPerImage * flops.total) / (gemm.fp32GFlops * 1e6),
    // every product at the int8 rate: what no configuration that computes every step can beat
    int8DenoiseMs: (callsPerImage * flops.total) / (gemm.int8DynamicGOps * 1e6),
  };
  log(`${name}: denoiser ${(flops.total / 1e9).toFixed(1)} GFLOP per call (weights ${(flops.weight / 1e9).toFixed(1)}, activations ${(flops.activation / 1e9).toFixed(1)}, conv ${(flops.conv / 1e9).toFixed(1)}${flops.unknown ? `, ${flops.unknown} nodes of unknown shape` : ''}), ${callsPerImage} calls per image; floor ${(floor.fp32DenoiseMs / 1000).toFixed(2)} s fp32, ${(floor.int8DenoiseMs / 1000).toFixed(2)} s int8`);

  const prompts = BENCH_PROMPTS;
  const configs = Object.entries(configsFor(w.kind, prompts)).filter(([, c]) => c);
  const peers = await openPeers(w, src.dir);
  const samples = { baseline: [] };
  const meta = { baseline: { oneTimeMs: 0, loadRssBytes: baseRss, psnrVsBaseline: Infinity } };
  const groups = [];
  for (let i = 0; i < configs.length; i += groupSize) groups.push(configs.slice(i, i + groupSize));
  if (!groups.length) groups.push([]);
  for (const [gi, group] of groups.entries()) {
    const members = [baseMember];
    const opened = [];
    for (const [cname, cfg] of group) {
      const before = settledRss();
      t0 = performance.now();
      try {
        const p = cfg === OLD_DEFAULTS
          ? await loadPipeline(src.dir, { threads, session: { memArena: true }, fuseAttention: false })
          : await smash(base, new SmashConfig(cfg), { threads });
        const oneTimeMs = performance.now() - t0;
        opened.push(p);
        meta[cname] = { config: cfg, oneTimeMs, loadRssBytes: settledRss() - before };
        members.push(ourMember(cname, p, gen));
        log(`${name}: smashed '${cname}' in ${(meta[cname].oneTimeMs / 1000).toFixed(1)} s`);
      } catch (e) {
        meta[cname] = { config: cfg, error: `${e.code ? `[${e.code}] ` : ''}${e.message}` };
        log(`${name}: '${cname}' failed to smash: ${meta[cname].error}`);
      }
    }
    if (gi === 0) for (const p of peers) members.push(peerMember(p.name, p.peer, w, gen));
    // warm-up (sessions' first runs), and the picture each is compared with the baseline's on
    for (const m of members.slice(1)) {
      try {
        const r = await m.run(BENCH_PROMPTS[0], 0, latentsOf(0));
        meta[m.name] ??= { oneTimeMs: 0 };
        meta[m.name].psnrVsBaseline = r.images ? psnrDb(r.images, warmBase.images) : null;
      } catch (e) {
        meta[m.name].error = `${e.code ? `[${e.code}] ` : ''}${e.message}`;
        log(`${name}: '${m.name}' failed: ${meta[m.name].error}`);
      }
    }
    const live = members.filter((m) => !meta[m.name]?.error);
    for (let r = 0; r < repeat; r++) {
      const seed = 100 + r;
      for (const m of live) {
        if (meta[m.name]?.error) continue;
        try {
          const res = await m.run(prompts[r % prompts.length], seed, latentsOf(seed));
          (samples[m.name] ??= []).push({ ...res, images: undefined, group: gi });
        } catch (e) {
          meta[m.name].error = `${e.code ? `[${e.code}] ` : ''}${e.message}`;
          delete samples[m.name];
          log(`${name}: '${m.name}' failed: ${meta[m.name].error}`);
        }
      }
      log(`${name}: group ${gi + 1}/${groups.length} round ${r + 1}/${repeat}: ${live.filter((m) => samples[m.name]).map((m) => `${m.name} ${(samples[m.name].at(-1).totalMs / 1000).toFixed(2)} s`).join(', ')}`);
    }
    for (const p of opened) await p.release();
  }
  for (const p of peers) await p.peer.close?.();
  await base.release();

  const baseSamples = samples.baseline;
  const rows = [];
  for (const [cname, ss] of Object.entries(samples)) {
    // the ratio against the baseline runs of the same group (the same rounds)
    const groupBase = baseSamples.filter((b) => ss.some((s) => s.group === b.group));
    const bMed = median(groupBase.map((s) => s.totalMs));
    const pick = (k) => median(ss.map((s) => s[k]));
    const bPick = (k) => median(groupBase.map((s) => s[k]));
    const denoise = pick('denoise');
    rows.push({
      workload: name, config: cname, recipe: cname.startsWith('recipe'), smashConfig: meta[cname]?.config ?? null, runs: ss.length,
      medianMs: pick('totalMs'), speedup: bMed / pick('totalMs'),
      stages: { textEncodeMs: pick('text'), denoiseMs: denoise, decodeMs: pick('decode') },
      stageSpeedups: { textEncode: bPick('text') / pick('text'), denoise: bPick('denoise') / denoise, decode: bPick('decode') / pick('decode') },
      baselineMedianMs: bMed, denoiserCalls: pick('calls'),
      // × above the floor: this configuration's denoise time over the floor's (below 1: it skips work)
      floorDistance: { fp32: denoise / floor.fp32DenoiseMs, int8: denoise / floor.int8DenoiseMs },
      effectiveGFlops: (callsPerImage * flops.total) / (denoise * 1e6),
      oneTimeMs: meta[cname]?.oneTimeMs ?? 0,
      memory: { loadRssBytes: meta[cname]?.loadRssBytes ?? null, maxPeakRssBytes: Math.max(...ss.map((s) => s.peak)), maxTransientBytes: Math.max(...ss.map((s) => s.transient)) },
      psnrVsBaselineRandomWeights: meta[cname]?.psnrVsBaseline ?? null,
    });
  }
  for (const [cname, m] of Object.entries(meta)) if (m.error) rows.push({ workload: name, config: cname, recipe: cname.startsWith('recipe'), smashConfig: m.config ?? null, error: m.error });
  for (const r of rows) {
    if (r.error) console.log(`${name} ${r.config}: ERROR ${r.error}`);
    else console.log(`${name} ${r.config.padEnd(58)} ${(r.medianMs / 1000).toFixed(2).padStart(6)} s/image ×${r.speedup.toFixed(2)}  text ${r.stages.textEncodeMs.toFixed(0)} / denoise ${r.stages.denoiseMs.toFixed(0)} / decode ${r.stages.decodeMs.toFixed(0)} ms  floor ×${r.floorDistance.fp32.toFixed(2)} fp32 ×${r.floorDistance.int8.toFixed(2)} int8  smash ${(r.oneTimeMs / 1000).toFixed(1)} s`);
  }
  return {
    workload: name, description: w.description, folder: src.dir, parameters: src.parameters, firstBuildMs: src.built ? src.buildMs : null,
    loadMs: baseLoadMs, generation: gen, floor, rows,
  };
}

// ------------------------------------------------------------------ sd15-unet-full (its own process)

function unetFull() {
  const args = [join(root, 'bench', 'unet-full.mjs'), '--calls', quick ? '1' : '2', ...(threads ? ['--threads', String(threads)] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) return { workload: 'sd15-unet-full', error: `exit ${r.status}` };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

// ------------------------------------------------------------------ fidelity (trained pipelines)

async function fidelity() {
  const { evaluateConfigs } = await import(join(root, 'dist', 'eval', 'run.js'));
  const { defineTask } = await import(join(root, 'dist', 'eval', 'task.js'));
  const { shapePrompts } = await import(join(root, 'dist', 'eval', 'prompts.js'));
  const out = [];
  const work = mkdtempSync(join(tmpdir(), 'smash-bench-fidelity-'));
  try {
    for (const [pipeline, kind, generation] of [
      ['shapes-flux', 'flux', { width: 32, height: 32, steps: 28, maxSequenceLength: 32 }],
      ['shapes-sd', 'sd', { width: 32, height: 32, steps: 25, guidanceScale: 7.5 }],
    ]) {
      const prompts = shapePrompts(quick ? 4 : 8);
      const task = defineTask({ prompts, seeds: quick ? [0] : [0, 1], metrics: ['psnrDb', 'ssim', 'latencyMs'], generation, warmup: 0 });
      let configs = Object.entries(recipes(kind, SHAPES_PROMPTS[kind]));
      if (values.config) configs = configs.filter(([n]) => values.config.split(',').some((c) => n.includes(c)));
      const t0 = performance.now();
      const { results } = await evaluateConfigs({
        model: join(root, 'test', 'fixtures', 'trained', pipeline), configs: configs.map(([name, c]) => ({ name, config: new SmashConfig(c) })), task, out: join(work, pipeline), load: { threads },
      });
      for (const r of results.filter((x) => !x.isBase)) {
        const ps = r.samples.map((s) => s.psnrDb).filter((v) => v !== undefined);
        const ss = r.samples.map((s) => s.ssim).filter((v) => v !== undefined);
        const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
        out.push({ pipeline, config: r.name, images: r.samples.length, meanPsnrDb: mean(ps), minPsnrDb: Math.min(...ps), meanSsim: mean(ss), minSsim: Math.min(...ss), speedup: results[0].metrics.latencyMs / r.metrics.latencyMs });
        const o = out.at(-1);
        console.log(`${pipeline} ${r.name.padEnd(58)} PSNR ${o.meanPsnrDb.toFixed(1)} dB (min ${o.minPsnrDb.toFixed(1)})  SSIM ${o.meanSsim.toFixed(3)} (min ${o.minSsim.toFixed(3)})`);
      }
      log(`fidelity on ${pipeline}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { prompts: quick ? 4 : 8, seeds: quick ? [0] : [0, 1], targets: { psnrDb: 25, ssim: 0.85 }, rows: out };
}

// ------------------------------------------------------------------ main

const names = values.workload ? values.workload.split(',') : Object.keys(WORKLOADS);
for (const n of names) if (!WORKLOADS[n]) throw new Error(`--workload ${n}: no such workload (${Object.keys(WORKLOADS).join(', ')})`);
const m = machine();
log(`${m.cpu}, ${m.cores} cores, ${m.flags.join(' ')}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
// the GEMM throughput, measured before every workload and at the end; the best of each kind is
// the machine's (other work on a shared machine only ever slows a measurement down)
const gemm = { shape: null, fp32GFlops: 0, int8DynamicGOps: 0, int8IntegerGOps: 0, measurements: [] };
async function remeasureGemm() {
  const g = await measureGemm({ threads });
  gemm.measurements.push({ ...g, loadAverage: loadavg()[0] });
  gemm.shape = g.shape;
  for (const k of ['fp32GFlops', 'int8DynamicGOps', 'int8IntegerGOps']) gemm[k] = Math.max(gemm[k], g[k]);
  log(`GEMM 384×768×3072: float32 MatMul ${g.fp32GFlops.toFixed(0)} GFLOP/s, DynamicQuantizeMatMul ${g.int8DynamicGOps.toFixed(0)} GOPS, MatMulInteger ${g.int8IntegerGOps.toFixed(0)} GOPS (best so far ${gemm.fp32GFlops.toFixed(0)} / ${gemm.int8DynamicGOps.toFixed(0)} / ${gemm.int8IntegerGOps.toFixed(0)})`);
}
const workloads = [];
let fid = null;
const quoted = process.argv.slice(2).map((a) => (/[^\w,.=/:+-]/.test(a) ? `'${a}'` : a));
const command = `npm run bench${quoted.length ? ` -- ${quoted.join(' ')}` : ''}`;
const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '');
/** Writes what is measured so far (after every workload: a long run that is stopped keeps its results). */
function save(done) {
  const result = {
    date: new Date().toISOString(), command, complete: done, machine: m, loadAverage: loadavg(), node: process.version,
    onnxruntime: JSON.parse(readFileSync(join(root, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')).version,
    quick, repeat, threads: threads ?? 'onnxruntime default', totalMs: performance.now() - started,
    baselineSessionOptions: {
      ...defaultSessionOptions('denoiser'), graphOptimizationLevel: 'all', intraOpNumThreads: threads ?? 'onnxruntime default (one per physical core)',
      note: 'our loader\'s defaults (pipelines/loader.ts defaultSessionOptions): onnxruntime\'s own, with the CPU memory arena off; every component alike',
    },
    gemm, targets: { 'flux-small': 6, 'sd15-small': 5, psnrDb: 25, ssim: 0.85 }, workloads, fidelity: fid,
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  const json = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(join(root, 'bench', 'results', `run-${stamp}${quick ? '-quick' : ''}.json`), json);
  writeFileSync(join(root, 'bench', 'results', 'latest.json'), json);
  return result;
}
// fidelity first: the trained pipelines are small, and the targets hold only with it
if (!values['no-fidelity']) {
  try {
    fid = await fidelity();
  } catch (e) {
    log(`fidelity failed: ${e.stack ?? e.message}`);
    fid = { error: `${e.code ? `[${e.code}] ` : ''}${e.message}` };
  }
  save(false);
}
for (const n of names) {
  await remeasureGemm();
  if (WORKLOADS[n].kind === 'unet') {
    const r = unetFull();
    if (!r.error) {
      r.floor = { fp32CallMs: r.flops.total / (gemm.fp32GFlops * 1e6) };
      log(`sd15-unet-full: convert ${(r.convertMs / 1000).toFixed(1)} s (0: cached), load ${(r.loadMs / 1000).toFixed(1)} s, call ${r.callMs.map((x) => (x / 1000).toFixed(1)).join(', ')} s (floor ${(r.floor.fp32CallMs / 1000).toFixed(1)} s), peak RSS ${(r.peakRss / 2 ** 30).toFixed(2)} GiB (weights ${(r.weightBytes / 2 ** 30).toFixed(2)} GiB)`);
    } else log(`sd15-unet-full failed: ${r.error}`);
    workloads.push(r);
  } else {
    try {
      workloads.push(await pipelineWorkload(n, gemm));
    } catch (e) {
      log(`${n} failed: ${e.stack ?? e.message}`);
      workloads.push({ workload: n, error: `${e.code ? `[${e.code}] ` : ''}${e.message}` });
    }
  }
  save(false);
}
await remeasureGemm();
// the floors with the best throughput of the whole run
for (const w of workloads) {
  if (w.floor?.fp32DenoiseMs !== undefined) {
    const { flopsPerCall: f, callsPerImage: c } = w.floor;
    w.floor.fp32DenoiseMs = (c * f.total) / (gemm.fp32GFlops * 1e6);
    w.floor.int8DenoiseMs = (c * f.total) / (gemm.int8DynamicGOps * 1e6);
    for (const r of w.rows) if (r.stages) r.floorDistance = { fp32: r.stages.denoiseMs / w.floor.fp32DenoiseMs, int8: r.stages.denoiseMs / w.floor.int8DenoiseMs };
  } else if (w.flops) w.floor = { fp32CallMs: w.flops.total / (gemm.fp32GFlops * 1e6) };
}
const totalMs = performance.now() - started;
log(`done in ${(totalMs / 60000).toFixed(1)} min`);
const result = save(true);
// a whole run (every workload, every configuration of its mode) is what the README's table shows
if (!values.workload && !values.config && !values['no-fidelity']) {
  const { writeReadmeTable } = await import('./readme-table.mjs');
  writeReadmeTable(result);
  log('README.md: the results table written from this run (node bench/readme-table.mjs <results.json> writes another)');
}
