// Peak memory and time of converting an SD 1.5-size UNet (860M parameters) stored in fp16 into
// float32 ONNX. Run after `npm ci` (uses dist/):  node bench/convert-memory.mjs [workdir]
// It writes the random checkpoint once (3.4 GB of disk for fp32 output + 1.7 GB input), then
// converts in a child process that reports its VmRSS after imports (the baseline) and VmHWM
// (the peak resident set) at the end, from /proc/self/status.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const work = resolve(process.argv[2] ?? 'out/bench-memory');
const src = join(work, 'sd15-unet-fp16');
const out = join(work, 'sd15-unet-onnx');
mkdirSync(work, { recursive: true });
if (!existsSync(join(src, 'config.json'))) {
  const r = spawnSync(process.execPath, ['bin/smash.js', 'create-random', '--class', 'UNet2DConditionModel', '--config', 'sd15', '--dtype', 'fp16', '--out', src], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
rmSync(out, { recursive: true, force: true });

const child = `
import { readFileSync } from 'node:fs';
const { convert } = await import(${JSON.stringify(resolve('dist/index.js'))});
const kb = (k) => Number(new RegExp(k + ':\\\\s+(\\\\d+)').exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const base = kb('VmRSS');
const t0 = performance.now();
convert(${JSON.stringify(src)}, ${JSON.stringify(out)});
const ms = performance.now() - t0;
console.log(JSON.stringify({ baselineRss: base, peakRss: kb('VmHWM'), seconds: ms / 1000 }));
`;
const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
if (r.status !== 0) process.exit(r.status ?? 1);
const m = JSON.parse(r.stdout.trim().split('\n').pop());
const files = readdirSync(out).map((f) => `${f} ${(statSync(join(out, f)).size / 2 ** 30).toFixed(2)} GiB`);
const gib = (b) => (b / 2 ** 30).toFixed(2);
console.log(`converted ${src} -> ${out} (${files.join(', ')})`);
console.log(`time ${m.seconds.toFixed(1)} s; peak RSS ${gib(m.peakRss)} GiB; baseline ${gib(m.baselineRss)} GiB; above baseline ${gib(m.peakRss - m.baselineRss)} GiB`);
