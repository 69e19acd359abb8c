// Writes the denoisers the GPTQ probe (gptq.py beside it) quantizes: each graph as ONNX with the
// MatMuls int4WeightOnly targets by default, and the feeds of one call. The random-weight
// sd15-unet-tiny on its reference inputs; the trained shapes denoisers on two real calls each
// (two prompts, step 6 of 12 at 32×32), so one can calibrate on one and judge on the other.
//   node --import tsx bench/gptq/dump.ts --out /tmp/gptq
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { targetNodes } from '../../src/algorithms/quantizers/targets.js';
import { saveModel } from '../../src/ir/model-file.js';
import { capturedDenoiser, unetDenoiser, type FixtureDenoiser } from '../../test/algorithms/denoisers.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: '/tmp/gptq' } } });
const out = values.out!;
mkdirSync(out, { recursive: true });

function dump(d: FixtureDenoiser, tag: string): void {
  const m = d.build();
  const nodes = targetNodes(m.graph, d.component, {}).filter((n) => n.opType === 'MatMul' && n.inputs[1]?.const);
  saveModel(m, join(out, `${tag}.onnx`), {});
  const feeds = Object.fromEntries(Object.entries(d.feeds).map(([k, v]) => [k, { dims: v.dims, data: Array.from(v.data as Float32Array) }]));
  const targets = nodes.map((n) => ({ node: n.name, input: n.inputs[0]!.name, weight: n.inputs[1]!.name }));
  writeFileSync(join(out, `${tag}.json`), JSON.stringify({ targets, feeds, output: d.output }));
  console.log(`${tag}: ${nodes.length} MatMuls`);
}

dump(unetDenoiser(), 'sd15-unet-tiny');
for (const pipeline of ['shapes-sd', 'shapes-flux'] as const) {
  for (const [tag, prompt] of [['blue', 'a large blue triangle at the top on a white background'], ['red', 'a small red circle at the left on a black background']] as const) {
    const d = await capturedDenoiser(pipeline, prompt, { steps: 12, step: 6 });
    dump(d, `${d.name}-${tag}`);
  }
}
