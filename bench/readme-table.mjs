// Writes the README's benchmark results (between the bench:results markers in README.md) from a
// results JSON of bench/run.mjs (default bench/results/latest.json): the command, the date, the
// machine, the medians and ratios per configuration with the targets beside them, the floor, the
// per-stage figures and the recipes' fidelity on the trained pipelines.
//   node bench/readme-table.mjs [results.json [more.json ...]] [--fidelity other.json] [--save merged.json] [--check]
// More results files add their workloads (each workload's row says which run it comes from).
// --fidelity takes the trained pipelines' fidelity from another run's results (a run with
// --no-fidelity, completed by an earlier one's); --check: exit 1 if the README differs.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const START = '<!-- bench:results:start (written by `node bench/readme-table.mjs` from bench/results/latest.json: do not edit by hand) -->';
const END = '<!-- bench:results:end -->';

const s = (ms) => (ms / 1000).toFixed(2);
const x = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '—');
const gib = (b) => (b / 2 ** 30).toFixed(2);

export function resultsMarkdown(r) {
  const out = [];
  const m = r.machine;
  const flags = m.flags.length ? m.flags.join(' ') : 'flags unknown';
  out.push(
    `${r.complete === false ? '**An incomplete run (stopped before the end; what it measured):** ' : ''}Command: \`${r.command}\` (${r.quick ? 'quick: fewer configurations, ' : ''}${r.repeat} interleaved timed runs per configuration after a warm-up, medians), ` +
      `${r.date.slice(0, 16).replace('T', ' ')} UTC, ${(r.totalMs / 60000).toFixed(1)} minutes in all (workloads already built). Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ISA: ${flags}; ` +
      `load average ${r.loadAverage.map((v) => v.toFixed(1)).join(' / ')} at the end (a shared machine: ratios hold within a run, absolute times do not). onnxruntime-node ${r.onnxruntime}, Node ${r.node}.`,
    '',
    `The baseline is our conversion on onnxruntime with the session options our loader gives every component: graph optimization level \`all\`, CPU memory arena off (\`enableCpuMemArena: false\`), memory pattern on, intra-op threads ${typeof r.threads === 'number' ? r.threads : 'onnxruntime\'s default (one per physical core)'}, sequential execution. ` +
      'Each ratio is against the baseline runs of the same rounds. ' +
      (r.gemm.fp32GFlops ? `GEMM throughput measured in the same run (384×768×3072, the fastest call of ${r.gemm.measurements.length} measurements of 15 calls): float32 \`MatMul\` ${r.gemm.fp32GFlops.toFixed(0)} GFLOP/s, \`DynamicQuantizeMatMul\` ${r.gemm.int8DynamicGOps.toFixed(0)} GOPS, \`MatMulInteger\` ${r.gemm.int8IntegerGOps.toFixed(0)} GOPS. ` : '') +
      '"Floor" is the uncached denoiser\'s matrix FLOPs per image (MatMul, Gemm, Conv; from the graph\'s inferred shapes) at that float32 (int8) rate; a configuration\'s "× floor" is its denoise time over it (below 1: it skips work).',
  );
  if (r.workloads.some((w) => w.rows || w.error)) {
    out.push(
      '',
      '| workload | configuration | s/image | × baseline | target | text / denoise / decode (s) | × floor fp32 / int8 | smash, once (s) | RSS its sessions added (GiB) |',
      '|---|---|---|---|---|---|---|---|---|',
    );
  }
  for (const w of r.workloads) {
    if (w.error && w.workload !== 'sd15-unet-full') out.push(`| ${w.workload} | failed: ${w.error.replace(/\|/g, '\\|').slice(0, 200)} | | | | | | | |`);
    if (!w.rows) continue;
    const target = r.targets[w.workload];
    const g = w.generation;
    const from = w.source ? `; from the run of ${w.source.date.slice(11, 16)} UTC, \`${w.source.command}\`, load average ${w.source.loadAverage[0].toFixed(1)}` : '';
    const label = `${w.workload}: ${g.width}×${g.height}, ${g.steps} steps${g.guidanceScale ? `, guidance ${g.guidanceScale}` : ''}${g.maxSequenceLength ? `, ${g.maxSequenceLength} T5 tokens` : ''} (${(w.parameters / 1e6).toFixed(1)}M parameters; floor ${s(w.floor.fp32DenoiseMs)} / ${s(w.floor.int8DenoiseMs)} s: ${(w.floor.flopsPerCall.total / 1e9).toFixed(1)} GFLOP × ${w.floor.callsPerImage} calls${from})`;
    let first = true;
    const ordered = [...w.rows].sort((a, b) => (a.config === 'baseline' ? -1 : b.config === 'baseline' ? 1 : (b.recipe ? 1 : 0) - (a.recipe ? 1 : 0)));
    for (const row of ordered) {
      const name = row.recipe ? `**${row.config}**` : row.config === 'baseline' ? 'baseline' : `\`${row.config}\``;
      if (row.error) {
        out.push(`| ${first ? label : ''} | ${name} | failed: ${row.error.replace(/\|/g, '\\|').slice(0, 160)} | | | | | | |`);
      } else {
        const tgt = row.recipe && target ? `≥ ${target}×: ${row.speedup >= target ? 'reached' : '**not reached**'}` : '';
        const st = row.stages;
        const rss = row.memory?.loadRssBytes;
        out.push(`| ${first ? label : ''} | ${name} | ${s(row.medianMs)} | ${x(row.speedup)} | ${tgt} | ${s(st.textEncodeMs)} / ${s(st.denoiseMs)} / ${s(st.decodeMs)} | ${row.floorDistance.fp32.toFixed(2)} / ${row.floorDistance.int8.toFixed(2)} | ${row.oneTimeMs ? s(row.oneTimeMs) : '—'} | ${rss !== null && rss !== undefined ? gib(rss) : '—'} |`);
      }
      first = false;
    }
  }
  const full = r.workloads.find((w) => w.workload === 'sd15-unet-full');
  if (full?.error) out.push('', `sd15-unet-full failed: ${full.error}.`);
  if (full && !full.error) {
    out.push(
      '',
      `sd15-unet-full (the full-size SD 1.5 UNet, ${full.parameters.toLocaleString('en-US')} parameters, fp16 weights converted to float32 ONNX: ${gib(full.weightBytes)} GiB), one call at 512×512 with CFG (batch 2), in a process of its own: ` +
        `${full.convertMs ? `conversion ${s(full.convertMs)} s, ` : ''}session load ${s(full.loadMs)} s, call ${full.callMs.map(s).join(' / ')} s ` +
        `(floor ${s(full.floor.fp32CallMs)} s: ${(full.flops.total / 1e9).toFixed(0)} GFLOP at the float32 rate), peak RSS ${gib(full.peakRss)} GiB (${gib(full.rssLoaded)} GiB after load)${full.source ? `; from the run of ${full.source.date.slice(11, 16)} UTC, \`${full.source.command}\`, load average ${full.source.loadAverage[0].toFixed(1)}` : ''}.`,
    );
  }
  if (r.fidelity?.error) out.push('', `Fidelity on the trained pipelines failed: ${r.fidelity.error}.`);
  else if (r.fidelity) {
    const f = r.fidelity;
    out.push(
      '',
      `Fidelity of the recipes on the trained pipelines (\`test/fixtures/trained\`, 32×32, through the evaluation agent${r.fidelitySource ? `; from the run of ${r.fidelitySource.date.slice(0, 16).replace('T', ' ')} UTC, \`${r.fidelitySource.command}\`` : ''}): ${f.prompts} shape prompts × seeds ${f.seeds.join(', ')}, each picture against the unsmashed pipeline's with the same seed and initial latents. Targets: PSNR ≥ ${f.targets.psnrDb} dB, SSIM ≥ ${f.targets.ssim}.`,
      '',
      '| pipeline | recipe | PSNR mean (min), dB | SSIM mean (min) | targets |',
      '|---|---|---|---|---|',
    );
    for (const row of f.rows) {
      const ok = row.minPsnrDb >= f.targets.psnrDb && row.minSsim >= f.targets.ssim;
      const meanOk = row.meanPsnrDb >= f.targets.psnrDb && row.meanSsim >= f.targets.ssim;
      out.push(`| ${row.pipeline} | ${row.config.replace(/^recipe: /, '')} | ${row.meanPsnrDb.toFixed(1)} (${row.minPsnrDb.toFixed(1)}) | ${row.meanSsim.toFixed(3)} (${row.minSsim.toFixed(3)}) | ${ok ? 'met on every picture' : meanOk ? 'met on average, not on every picture' : '**not met**'} |`);
    }
  }
  return out.join('\n');
}

/** Puts the results table of `r` between the README's markers; returns whether it changed (`check`: only compares). */
export function writeReadmeTable(r, { check = false } = {}) {
  const readme = join(root, 'README.md');
  const text = readFileSync(readme, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${START} … ${END} block`);
  const next = `${text.slice(0, a + START.length)}\n${resultsMarkdown(r)}\n${text.slice(b)}`;
  if (!check && next !== text) writeFileSync(readme, next);
  return next !== text;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const files = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--fidelity' && args[i - 1] !== '--save');
  const file = files[0] ?? join(root, 'bench', 'results', 'latest.json');
  const r = JSON.parse(readFileSync(file, 'utf8'));
  // further results files add their workloads (runs of single workloads, side by side)
  for (const f of files.slice(1)) {
    const other = JSON.parse(readFileSync(f, 'utf8'));
    r.workloads.push(...other.workloads.map((w) => ({ ...w, source: { date: other.date, command: other.command, loadAverage: other.loadAverage, gemm: other.gemm } })));
  }
  const fi = args.indexOf('--fidelity');
  if (fi >= 0) {
    const other = JSON.parse(readFileSync(args[fi + 1], 'utf8'));
    r.fidelity = other.fidelity;
    r.fidelitySource = { date: other.date, command: other.command, file: args[fi + 1] };
  }
  // --save <file>: the merged results as one JSON, e.g. bench/results/latest.json (then the plain command reproduces the README)
  const si = args.indexOf('--save');
  if (si >= 0) writeFileSync(args[si + 1], `${JSON.stringify(r, null, 2)}\n`);
  const changed = writeReadmeTable(r, { check: args.includes('--check') });
  if (args.includes('--check')) process.exit(changed ? 1 : 0);
  console.log(`README.md: results of ${file} (${r.date})`);
}
