import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { convert } from '../../src/models/convert.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { loadPipeline } from '../../src/pipelines/index.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { optimumStyle } from '../optimum-style.js';
import { e2eOptions, loopFile, tempDir } from './fixtures.js';
import type { DType } from '../../src/core/dtype.js';

const tmp = tempDir('optimum');
after(() => tmp.cleanup());

/** Converts a fixture pipeline, then rewrites components' inputs as Optimum's exports declare them. */
function optimumFolder(pipeline: string, changes: Record<string, Record<string, { dtype: DType; batchAxis?: boolean }>>): string {
  const dir = join(tmp.dir, pipeline);
  convert(fixture('pipelines', pipeline), dir);
  for (const [component, inputs] of Object.entries(changes)) {
    const path = join(dir, component, 'model.onnx');
    const m = loadModel(path);
    saveModel(optimumStyle(m, inputs), path);
  }
  return dir;
}

let sdDir: string;
let fluxDir: string;
before(() => {
  sdDir = optimumFolder('sd15-tiny', { unet: { timestep: { dtype: 'int64' } }, text_encoder: { input_ids: { dtype: 'int32' } } });
  fluxDir = optimumFolder('flux-tiny', { transformer: { img_ids: { dtype: 'float32', batchAxis: true }, txt_ids: { dtype: 'float32', batchAxis: true } }, text_encoder_2: { input_ids: { dtype: 'int32' } } });
});

test('an Optimum-style SD folder (int64 timestep, int32 ids) reproduces e2e_sd15_tiny_cat', async () => {
  const p = await loadPipeline(sdDir, { threads: 1 });
  const r = await p.generate(e2eOptions('e2e_sd15_tiny_cat'));
  const e = relL2(r.images.data, readF32(loopFile('e2e_sd15_tiny_cat'), 'output.image').data);
  assert.ok(e < 1e-3, `relL2 ${e}`);
});

test('an Optimum-style Flux folder (ids with a batch axis, int32 T5 ids) reproduces e2e_flux_tiny_fox', async () => {
  const p = await loadPipeline(fluxDir, { threads: 1 });
  const r = await p.generate(e2eOptions('e2e_flux_tiny_fox'));
  const e = relL2(r.images.data, readF32(loopFile('e2e_flux_tiny_fox'), 'output.image').data);
  assert.ok(e < 1e-3, `relL2 ${e}`);
});
