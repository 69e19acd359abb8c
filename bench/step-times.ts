// Per-step wall time (generate's timings.stepsMs) beside the process CPU time, system time and
// minor page faults of each step, over two generations: does a slow step do more work (allocation,
// denormals) or get less CPU? Not a test: it measures and prints.
//   node --import tsx bench/step-times.ts --model <pipeline> [--size 256] [--steps 12] [--seq 128] [--config key=value,...]
import { parseArgs } from 'node:util';
import { loadPipeline } from '../src/pipelines/loader.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, size: { type: 'string' }, steps: { type: 'string' }, seq: { type: 'string' }, config: { type: 'string' }, cache: { type: 'string' } } });
const configEntries = values.config ? Object.fromEntries(values.config.split(',').map((kv) => kv.split('=') as [string, string])) : undefined;
const pipe = await loadPipeline(values.model!, { ...(values.cache ? { cacheDir: values.cache } : {}), ...(configEntries ? { session: { configEntries } } : {}) });
const size = Number(values.size ?? 256);
for (let g = 0; g < 2; g++) {
  const cpu: string[] = [];
  let u0 = process.resourceUsage();
  const r = await pipe.generate({
    prompt: 'a red fox in the snow', width: size, height: size, steps: Number(values.steps ?? 12), seed: g,
    ...(pipe.className === 'FluxPipeline' ? { maxSequenceLength: Number(values.seq ?? 128) } : {}),
    onStep: () => {
      const u1 = process.resourceUsage();
      cpu.push(`${((u1.userCPUTime - u0.userCPUTime) / 1000).toFixed(0)}/${((u1.systemCPUTime - u0.systemCPUTime) / 1000).toFixed(0)}/${u1.minorPageFault - u0.minorPageFault}`);
      u0 = u1;
    },
  });
  console.log(`generation ${g}: wall ms per step ${r.timings.stepsMs.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`generation ${g}: CPU user/sys ms and minor faults per step ${cpu.join(' ')}`);
}
await pipe.release();
