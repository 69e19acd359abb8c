import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../src/ir/model-file.js';
import type { Model } from '../../src/ir/graph.js';
import { buildComponent } from '../../src/models/convert.js';
import { graphTransform } from '../../src/smash/apply.js';
import { SmashConfig } from '../../src/smash/config.js';
import { folderTarget } from '../../src/smash/target.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempDir } from '../pipelines/fixtures.js';
import { fluxDenoiser, runOnce } from '../algorithms/denoisers.js';

const tmp = tempDir('convert-quantize');
after(() => tmp.cleanup());

/** Nodes (op, name, inputs) and initializers (name, dtype, shape, bytes) — what makes two graphs the same. */
function signature(m: Model) {
  const nodes = [...m.graph.nodes()].map((n) => `${n.domain}.${n.opType} ${n.name} (${n.inputs.map((v) => v?.name ?? '').join(',')})`);
  const inits = [...m.graph.initializers].map(([k, v]) => `${k} ${v.const!.dtype}[${v.const!.shape.join(',')}] ${Buffer.from(v.const!.bytes()).toString('base64').slice(0, 64)}`).sort();
  return { nodes, inits };
}

for (const [bits, algorithm, op] of [['int8', 'int8Dynamic', 'DynamicQuantizeMatMul'], ['int4', 'int4WeightOnly', 'MatMulNBits']] as const) {
  test(`smash convert --quantize ${bits} gives the graph and outputs of converting and then applying ${algorithm}`, async () => {
    const src = fixture('models', 'flux-transformer-tiny');
    const out = join(tmp.dir, bits);
    const r = await runCli(['convert', src, '--out', out, '--quantize', bits]);
    assert.equal(r.code, 0, r.stderr);
    const converted = loadModel(join(out, 'model.onnx'));
    const applied = graphTransform(new SmashConfig({ [algorithm]: {} }), folderTarget(src))('flux-transformer-tiny', buildComponent(src).model!);
    assert.ok([...converted.graph.nodes()].some((n) => n.opType === op));
    assert.deepEqual(signature(converted), signature(applied));
    const d = fluxDenoiser();
    assert.deepEqual(await runOnce(converted, d), await runOnce(applied, d));
  });
}

test('smash convert --quantize refuses an unknown width', async () => {
  const r = await runCli(['convert', fixture('models', 'flux-transformer-tiny'), '--out', join(tmp.dir, 'x'), '--quantize', 'int3']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--quantize int3 is not supported \(int8, int4\).*BAD_OPTION/);
});
