// Checks the diffusers peer against our pipeline: on a small random-weight Flux and SD folder
// (made with `smash create-random` when absent), both generate from the same initial latents;
// prints the PSNR between the two pictures (the same model in float32 should agree to > 40 dB)
// and the speed ratio, from runs interleaved in this one process. Needs `npm run build` and a
// Python with torch and diffusers (bench/README.md, 'Peer: diffusers'). Not part of npm test.
//   node bench/peer/check.mjs [--python P] [--threads N] [--repeat N] [--size PX] [--steps N]
//     [--dtype float32,bfloat16] [--kinds flux,sd] [--flux DIR] [--sd DIR] [--json FILE]
//     [--omp-passive]   (OMP_WAIT_POLICY=PASSIVE for torch: see bench/README.md on loaded machines)
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openPeer } from './diffusers.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { loadPipeline, Generator } = await import(join(root, 'dist', 'index.js'));
const { psnrDb } = await import(join(root, 'dist', 'eval', 'metrics.js'));

const { values } = parseArgs({
  options: {
    python: { type: 'string' }, threads: { type: 'string' }, repeat: { type: 'string' }, size: { type: 'string' },
    steps: { type: 'string' }, dtype: { type: 'string' }, kinds: { type: 'string' }, flux: { type: 'string' }, sd: { type: 'string' },
    json: { type: 'string' }, verbose: { type: 'boolean' }, 'omp-passive': { type: 'boolean' },
  },
});
const threads = Number(values.threads ?? 2);
const repeat = Number(values.repeat ?? 3);
const size = Number(values.size ?? 128);
const dtypes = (values.dtype ?? 'float32').split(',');
const kinds = (values.kinds ?? 'flux,sd').split(',');
const scratch = join(tmpdir(), 'smash-peer-check');

const workloads = {
  flux: {
    dir: values.flux ?? join(scratch, 'flux'),
    create: ['--pipeline', 'flux-dev', '--width-mult', '0.25', '--depth', '2'],
    prompt: 'a red fox in the snow',
    steps: Number(values.steps ?? 8),
    guidance: 3.5,
    maxSequenceLength: 64,
  },
  sd: {
    dir: values.sd ?? join(scratch, 'sd'),
    create: ['--pipeline', 'sd15', '--width-mult', '0.25', '--depth', '1'],
    prompt: 'a red fox in the snow',
    negativePrompt: '',
    steps: Number(values.steps ?? 10),
    guidance: 7.5,
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** HWC (the peer's) -> CHW (ours), one image. */
function hwcToChw(hwc, h, w) {
  const out = new Float32Array(hwc.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) out[c * h * w + y * w + x] = hwc[(y * w + x) * 3 + c];
  return out;
}

const results = [];
for (const kind of kinds) {
  const wl = workloads[kind];
  if (!wl) throw new Error(`--kinds: unknown ${kind} (flux, sd)`);
  if (!existsSync(join(wl.dir, 'model_index.json'))) {
    console.log(`creating ${wl.dir}`);
    execFileSync(process.execPath, [join(root, 'bin', 'smash.js'), 'create-random', ...wl.create, '--out', wl.dir, '--force'], { stdio: 'inherit' });
  }
  const ours = await loadPipeline(wl.dir, { threads });
  const peers = {};
  for (const dtype of dtypes) {
    peers[dtype] = await openPeer({ python: values.python ?? process.env.SMASH_PEER_PYTHON ?? 'python3', modelDir: wl.dir, kind, dtype, threads, verbose: values.verbose, env: values['omp-passive'] ? { OMP_WAIT_POLICY: 'PASSIVE' } : {} });
  }
  const info = Object.values(peers)[0].info;
  const h = size / ours.vaeScale;
  const dims = [1, ours.latentChannels, h, h];
  const latents = new Generator(7).randn(dims.reduce((a, b) => a * b, 1));
  const oursOpts = {
    prompt: wl.prompt, negativePrompt: wl.negativePrompt, width: size, height: size, steps: wl.steps, guidanceScale: wl.guidance,
    maxSequenceLength: wl.maxSequenceLength, latents: { dims, data: latents }, seed: 0,
  };
  const peerOpts = {
    prompt: wl.prompt, negativePrompt: wl.negativePrompt, width: size, height: size, steps: wl.steps, guidance: wl.guidance,
    maxSequenceLength: wl.maxSequenceLength, latents, seed: 0,
  };

  // the first run of each: warm-up, and the pictures compared
  const base = await ours.generate(oursOpts);
  const psnr = {};
  const maxAbs = {};
  for (const [dtype, peer] of Object.entries(peers)) {
    const r = await peer.generate({ ...peerOpts, returnImage: true });
    const theirs = hwcToChw(r.image, size, size);
    psnr[dtype] = psnrDb(theirs, base.images.data);
    maxAbs[dtype] = theirs.reduce((m, v, i) => Math.max(m, Math.abs(v - base.images.data[i])), 0);
  }
  // a PSNR means little on a flat or clipped picture: say what ours looks like
  const px = base.images.data;
  const mean = px.reduce((a, b) => a + b, 0) / px.length;
  const std = Math.sqrt(px.reduce((a, b) => a + (b - mean) ** 2, 0) / px.length);
  const clipped = px.filter((v) => v <= 0 || v >= 1).length / px.length;

  const times = { ours: [], ...Object.fromEntries(dtypes.map((d) => [`diffusers-${d}`, []])) };
  for (let i = 0; i < repeat; i++) {
    const t = (await ours.generate(oursOpts)).timings;
    times.ours.push({ total: t.totalMs, encode: t.textEncodeMs, denoise: t.denoiseMs, decode: t.decodeMs });
    for (const [dtype, peer] of Object.entries(peers)) {
      const r = await peer.generate(peerOpts);
      times[`diffusers-${dtype}`].push({ total: r.ms, ...r.stages });
    }
  }
  await ours.release();
  for (const peer of Object.values(peers)) await peer.close();

  const med = Object.fromEntries(Object.entries(times).map(([k, rs]) => [k, Object.fromEntries(['total', 'encode', 'denoise', 'decode'].map((s) => [s, median(rs.map((r) => r[s]))]))]));
  console.log(`\n${kind}: ${wl.dir}, ${size}×${size}, ${wl.steps} steps, guidance ${wl.guidance}, ${threads} threads, median of ${repeat} interleaved runs`);
  console.log(`  peer: ${info.scheduler}, torch ${info.versions.torch}, diffusers ${info.versions.diffusers}, ${info.threads} torch threads`);
  console.log(`  our picture: mean ${mean.toFixed(3)}, std ${std.toFixed(3)}, ${(clipped * 100).toFixed(1)}% of values clipped to 0 or 1`);
  for (const [dtype, db] of Object.entries(psnr)) console.log(`  PSNR ours vs diffusers ${dtype}: ${db.toFixed(2)} dB (largest difference ${maxAbs[dtype].toExponential(2)})`);
  console.log('  ms          total   encode  denoise   decode   diffusers/ours');
  for (const [k, m] of Object.entries(med)) {
    const f = (x) => x.toFixed(0).padStart(8);
    console.log(`  ${k.padEnd(18)}${f(m.total)} ${f(m.encode)} ${f(m.denoise)} ${f(m.decode)}   ${(m.total / med.ours.total).toFixed(2)}×`);
  }
  results.push({ kind, dir: wl.dir, size, steps: wl.steps, guidance: wl.guidance, threads, repeat, peer: info, psnrDb: psnr, maxAbsDiff: maxAbs, picture: { mean, std, clipped }, medianMs: med, runsMs: times });
}
if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
