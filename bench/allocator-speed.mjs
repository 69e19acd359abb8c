// Time per image of the benchmark workloads under glibc's malloc defaults and under other malloc
// settings (src/runtime/memory.ts's ALLOCATOR_ENV among them): one process per setting (glibc
// reads them at start), a warm-up image then 2 timed; the settings take turns, `--rounds` times,
// so that a change in the machine's load falls on all of them. Prints, per workload and setting,
// the median over rounds of ms per image, CPU s per image and VmHWM. Needs `npm run build`.
//   node bench/allocator-speed.mjs [--rounds 2] [--workload flux-small,sd15-small] [--setting name,...]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import { WORKLOADS, ensureWorkload } from './workloads.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [, , role, dir, name] = process.argv;
if (role === 'child') {
  const { loadPipeline } = await import(join(root, 'dist', 'index.js'));
  const pipe = await loadPipeline(dir);
  const gen = WORKLOADS[name].generation;
  const prompt = 'a red fox in the snow';
  await pipe.generate({ prompt, seed: 0, ...gen });
  const ms = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    await pipe.generate({ prompt, seed: i, ...gen });
    ms.push(performance.now() - t0);
  }
  const c = process.cpuUsage(c0);
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 2 ** 20;
  console.log(JSON.stringify({ ms: ms.reduce((a, b) => a + b) / 2, cpuS: (c.user + c.system) / 1e6 / 2, peakGiB: hwm }));
  process.exit(0);
}
const { values } = parseArgs({ options: { rounds: { type: 'string' }, workload: { type: 'string' }, setting: { type: 'string' } } });
const SETTINGS = {
  'glibc defaults': {},
  'huge pages': { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
  'huge pages + 2 arenas': { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', MALLOC_ARENA_MAX: '2' },
  'threshold 2 MiB + huge pages': { MALLOC_MMAP_THRESHOLD_: '2097152', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
  'threshold 128 KiB + huge pages': { MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
};
const pick = (list, all) => (list ? list.split(',') : Object.keys(all)).map((k) => {
  if (!(k in all)) throw new Error(`unknown ${k}; one of ${Object.keys(all).join(', ')}`);
  return k;
});
const settings = pick(values.setting, SETTINGS);
const rounds = Number(values.rounds ?? 2);
const clean = { ...process.env };
for (const k of ['MALLOC_MMAP_THRESHOLD_', 'GLIBC_TUNABLES', 'MALLOC_ARENA_MAX']) delete clean[k];
const median = (a) => a.slice().sort((x, y) => x - y)[(a.length - 1) >> 1];
for (const name of pick(values.workload, { 'flux-small': 1, 'sd15-small': 1 })) {
  const { dir } = ensureWorkload(name);
  const runs = Object.fromEntries(settings.map((s) => [s, []]));
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 ? settings.slice().reverse() : settings) {
      const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', dir, name], { encoding: 'utf8', env: { ...clean, ...SETTINGS[s] } });
      if (p.status !== 0) throw new Error(`${name} | ${s}: ${p.stderr.slice(-400)}`);
      runs[s].push(JSON.parse(p.stdout.trim().split('\n').pop()));
    }
  }
  const base = median(runs[settings[0]].map((x) => x.ms));
  for (const s of settings) {
    const ms = median(runs[s].map((x) => x.ms));
    console.log(`${name} | ${s} | ${(ms / 1000).toFixed(2)} s/image (×${(base / ms).toFixed(2)} of ${settings[0]}) | CPU ${median(runs[s].map((x) => x.cpuS)).toFixed(1)} s/image | VmHWM ${median(runs[s].map((x) => x.peakGiB)).toFixed(2)} GiB | rounds ${runs[s].map((x) => (x.ms / 1000).toFixed(2)).join(' ')}`);
  }
}
