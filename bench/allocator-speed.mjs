// Time per image of the benchmark workloads under glibc's malloc defaults and under the allocator
// settings of src/runtime/memory.ts (ALLOCATOR_ENV), and with a 2 MiB threshold: one process per
// setting (glibc reads them at start), a warm-up image then 2 timed; prints median ms, CPU s per
// image and VmHWM. Why the settings are an opt-in (README, "Memory"). Needs `npm run build`.
//   node bench/allocator-speed.mjs
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
  console.log(JSON.stringify({ ms, cpuSPerImage: (c.user + c.system) / 1e6 / 2, peakGiB: hwm }));
  process.exit(0);
}
const settings = {
  'glibc defaults': {},
  'ALLOCATOR_ENV (threshold 128 KiB + huge pages)': { MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
  'threshold 2 MiB + huge pages': { MALLOC_MMAP_THRESHOLD_: '2097152', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' },
};
const clean = { ...process.env };
delete clean.MALLOC_MMAP_THRESHOLD_;
delete clean.GLIBC_TUNABLES;
for (const name of ['flux-small', 'sd15-small']) {
  const { dir } = ensureWorkload(name);
  for (const [label, env] of Object.entries(settings)) {
    const p = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', dir, name], { encoding: 'utf8', env: { ...clean, ...env } });
    console.log(`${name} | ${label} | ${p.status === 0 ? p.stdout.trim().split('\n').pop() : `failed: ${p.stderr.slice(-400)}`}`);
  }
}
