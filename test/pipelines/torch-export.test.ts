/**
 * Real exporter output, not look-alikes: test/fixtures/torch-export/ holds the fixture pipelines
 * exported by PyTorch's own ONNX exporter (torch.onnx.export, TorchScript, opset 17) under
 * Optimum's names, dtypes and dynamic axes (scripts/fixtures/export_torch_onnx.py). Those graphs
 * differ from ours where Optimum's do: a 0-D float `timestep` for the UNet, int64 `img_ids` and
 * `txt_ids` of rank 2, int64 ids, weights inside model.onnx, PyTorch's node and initializer names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPipeline } from '../../src/pipelines/index.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile } from './fixtures.js';

async function e2e(folder: string, name: string): Promise<number> {
  const p = await loadPipeline(fixture('torch-export', folder), { threads: 1 });
  const r = await p.generate(e2eOptions(name));
  return relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
}

// the two pipelines load and run side by side (session creation dominates: seconds for the UNet)
test('PyTorch/Optimum-style exports reproduce the e2e fixtures', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('sd15-tiny (0-D float timestep, int64 ids) reproduces e2e_sd15_tiny_cat', async (s) => {
      const e = await e2e('sd15-tiny', 'e2e_sd15_tiny_cat');
      s.diagnostic(`relL2 ${e}`);
      assert.ok(e < 1e-3, `relL2 ${e}`);
    }),
    t.test('flux-tiny (int64 img_ids/txt_ids without a batch axis, guidance) reproduces e2e_flux_tiny_fox', async (s) => {
      const e = await e2e('flux-tiny', 'e2e_flux_tiny_fox');
      s.diagnostic(`relL2 ${e}`);
      assert.ok(e < 1e-3, `relL2 ${e}`);
    }),
  ]);
});
