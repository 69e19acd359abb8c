// The fidelity bounds for one denoiser call, judged on the trained pipelines (features as
// real models have them; the random-weight fixtures' figures are in each algorithm's own tests):
// every quantizer, the factorizer and the compiler's graph rewrites, on both trained denoisers,
// fed what a real generation feeds them (a prompt outside the calibration set, a middle step).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Algorithm } from '../../src/algorithms/algorithm.js';
import { ALGORITHMS } from '../../src/algorithms/registry.js';
import { shapePrompts } from '../../src/eval/prompts.js';
import { targetNodes } from '../../src/algorithms/quantizers/targets.js';
import { calibrate } from '../../src/smash/calibrate.js';
import { folderTarget } from '../../src/smash/target.js';
import { fixture, relL2 } from '../helpers.js';
import { capturedDenoiser, opCounts, runOnce } from './denoisers.js';

const PROMPT = 'a large blue triangle at the top on a white background';
const CALIBRATION = shapePrompts(2);
// calibrated at the captured call's size and T5 length (Flux; SD's CLIP always takes 77)
const CALIBRATION_SIZE = { 'shapes-sd': { calibrationWidth: 32, calibrationHeight: 32 }, 'shapes-flux': { calibrationWidth: 32, calibrationHeight: 32, calibrationMaxSequenceLength: 32 } };

/** algorithm, its settings, the bound, and the op its rewrite must leave in the graph */
const CASES: [string, Record<string, unknown>, number, (ops: Map<string, number>, base: Map<string, number>) => boolean][] = [
  ['qkv', {}, 1e-4, (o, b) => o.get('MatMul')! < b.get('MatMul')!],
  ['ortCompile', {}, 1e-4, (o) => o.get('MultiHeadAttention')! > 0],
  ['int8Dynamic', {}, 5e-2, (o) => o.get('DynamicQuantizeMatMul')! > 0],
  ['int8Static', { calibrationPrompts: CALIBRATION, calibrationSteps: 6 }, 5e-2, (o) => o.get('QuantizeLinear')! > 0],
  ['int8WeightOnly', {}, 5e-2, (o) => o.get('MatMulNBits')! > 0],
  ['int4WeightOnly', {}, 1e-1, (o) => o.get('MatMulNBits')! > 0],
  ['fp16', {}, 1e-2, (o) => o.get('Cast')! > 0],
];

for (const pipeline of ['shapes-sd', 'shapes-flux'] as const) {
  test(`${pipeline}: every quantizer, qkv and ortCompile keep one real denoiser call within the issue's bounds`, async () => {
    assert.ok(!CALIBRATION.includes(PROMPT), 'the judged call is not one calibration saw');
    const dir = fixture('trained', pipeline);
    const d = await capturedDenoiser(pipeline, PROMPT, { steps: 12, step: 6 });
    const ref = await runOnce(d.build(), d);
    const probe = d.build();
    const base = opCounts(probe);
    // the layers the default excludes leave alone (norms, embeddings, first and last layers)
    const targets = new Set(targetNodes(probe.graph, d.component, {}));
    const excluded = [...probe.graph.nodes()].filter((n) => ['Conv', 'MatMul'].includes(n.opType) && n.inputs[1]?.const && !targets.has(n)).map((n) => n.name);
    assert.ok(excluded.length > 0);
    for (const [name, settings, bound, changed] of CASES) {
      const algorithm = ALGORITHMS.get(name)! as Algorithm;
      const app = algorithm.apply(algorithm.schema.parse({ ...settings, ...(name === 'int8Static' ? CALIBRATION_SIZE[pipeline] : {}) }), folderTarget(dir));
      if (app.calibration) await calibrate(dir, app.calibration, (_c, m) => m, { threads: 1 });
      const m = app.transform!(d.component, d.build());
      assert.ok(changed(opCounts(m), base), `${name} rewrote the ${d.name} graph`);
      if (algorithm.kind === 'quantizer' && name !== 'fp16') {
        const nodes = new Map([...m.graph.nodes()].map((n) => [n.name, n]));
        for (const e of excluded) assert.equal(nodes.get(e)?.inputs[1]?.const?.dtype, 'float32', `${name} leaves ${e} (default-excluded) float`);
      }
      const err = relL2(await runOnce(m, d), ref);
      console.log(`${name} ${d.name}: relL2 ${err.toExponential(2)} (bound ${bound})`);
      assert.ok(err < bound, `${name} on ${d.name}: relL2 ${err} ≥ ${bound}`);
    }
  });
}
