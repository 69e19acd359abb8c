import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { LpipsModel } from '../../src/eval/lpips.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { saveModel } from '../../src/ir/model-file.js';
import { tempDir } from '../pipelines/fixtures.js';

const tmp = tempDir('lpips');
after(() => tmp.cleanup());

/** A stand-in "LPIPS" graph: the mean absolute difference of the two [-1, 1] pictures, per pair. */
function standIn(inputs = 2): string {
  const b = new GraphBuilder();
  const x = b.input('in0', 'float32', ['batch', 3, 'h', 'w']);
  const y = inputs === 2 ? b.input('in1', 'float32', ['batch', 3, 'h', 'w']) : x;
  const d = b.op('Abs', [b.sub(x, y)]);
  b.output(b.op('ReduceMean', [d], { axes: [1, 2, 3], keepdims: 0 }), 'distance');
  const file = join(tmp.dir, `lpips-${inputs}.onnx`);
  saveModel(b.model(), file);
  return file;
}

test('LPIPS: pictures in [0, 1] reach the graph in [-1, 1], one distance per pair; bad graphs and missing files name the problem', async () => {
  const m = await LpipsModel.load(standIn());
  // two pairs of 1×1 pictures: 0.5 vs 0.25 everywhere (|Δ| 0.25 in [0,1] → 0.5 in [-1,1]), then identical
  const a = Float32Array.from([0.5, 0.5, 0.5, 0.1, 0.2, 0.3]);
  const b = Float32Array.from([0.25, 0.25, 0.25, 0.1, 0.2, 0.3]);
  const d = await m.distances(a, b, [2, 3, 1, 1]);
  assert.equal(d.length, 2);
  assert.ok(Math.abs(d[0]! - 0.5) < 1e-6, `scaled to [-1, 1]: ${d[0]}`);
  assert.equal(d[1], 0);
  await m.release();
  await assert.rejects(LpipsModel.load(join(tmp.dir, 'none.onnx')), (e: unknown) => e instanceof ConfigError && e.code === 'LPIPS_MODEL_MISSING');
  await assert.rejects(LpipsModel.load(standIn(1)), (e: unknown) => e instanceof ModelFormatError && e.code === 'LPIPS_INPUTS');
});
