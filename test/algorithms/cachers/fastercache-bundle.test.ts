// FasterCache through smash(): with int8Dynamic, qkv and ortCompile on flux-tiny (attention
// extrapolation) and with int8Dynamic on sd15-tiny (the CFG-cache), saved as bundles and loaded
// again (the wrapper re-armed from the saved config and graph names): the same image; and
// `generate --report` on the bundle lists the computed and reused parts of every step.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../../src/ir/model-file.js';
import { allNodes } from '../../../src/ir/graph.js';
import { loadPipeline as loadOnnx } from '../../../src/pipelines/loader.js';
import { loadPipeline, smash } from '../../../src/smash/smash.js';
import { UNCONDITIONAL } from '../../../src/algorithms/cachers/fastercache.js';
import type { CacheStepReport } from '../../../src/pipelines/denoiser.js';
import { fixture, relL2 } from '../../helpers.js';
import { e2eOptions, tempDir } from '../../pipelines/fixtures.js';
import { runCli } from '../../cli/run-cli.js';

const tmp = tempDir('fastercache-bundle');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');

test('flux-tiny with fastercache + int8Dynamic + qkv + ortCompile: saved, loaded in a new process, the same image; the CLI report names the modules', async () => {
  const FX = 'e2e_flux_tiny_fox';
  const base = await loadOnnx(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1 });
  const smashed = await smash(base, { fastercache: {}, int8Dynamic: {}, qkv: {}, ortCompile: {} }, { threads: 1 });
  const a = await smashed.generate(e2eOptions(FX));
  const plain = await base.generate(e2eOptions(FX));
  await base.release();
  const reused = a.cache!.filter((s) => s.reused.length).length;
  const drift = relL2(a.images.data, plain.images.data);
  console.log(`flux-tiny fastercache + int8Dynamic + qkv + ortCompile: extrapolated ${reused}/${a.cache!.length} steps, relL2 vs base ${drift.toExponential(2)}`);
  assert.ok(reused > 0 && drift < 0.2, `reused ${reused}, relL2 ${drift}`);
  const dir = join(tmp.dir, 'flux-fast');
  await smashed.save(dir);
  await smashed.release();
  const ops = new Set([...allNodes(loadModel(join(dir, 'transformer', 'model.onnx')).graph)].map((n) => n.opType));
  assert.ok(ops.has('If') && ops.has('DynamicQuantizeMatMul'), 'the saved transformer holds the If regions and the quantized MatMuls');
  const out = join(tmp.dir, 'flux-fast.f32');
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', '..', 'smash', 'generate-bundle.ts'), dir, FX, out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(new Float32Array(readFileSync(out).buffer.slice(0)), a.images.data, 'the reloaded bundle draws the in-memory picture bit for bit');

  const report = join(tmp.dir, 'flux-report.json');
  const cli = await runCli(['generate', '--model', dir, '--prompt', 'a fox', '--steps', '4', '--width', '32', '--height', '32',
    '--max-sequence-length', '8', '--out', join(tmp.dir, 'fox.png'), '--report', report, '--threads', '1']);
  assert.equal(cli.code, 0, cli.stderr);
  const steps = (JSON.parse(readFileSync(report, 'utf8')) as { cache: CacheStepReport[] }).cache;
  assert.equal(steps.length, 4);
  for (const s of steps) {
    assert.equal(s.branch, 'cond');
    assert.ok([...s.computed, ...s.reused].includes('transformer_blocks.0.attn') && typeof s.ms === 'number');
  }
  assert.deepEqual(steps.map((s) => (s.reused.length ? 0 : 1)), [1, 0, 1, 0]);
});

test('sd15-tiny with fastercache + int8Dynamic: the CFG-cache survives save() and loadPipeline()', async () => {
  const FX = 'e2e_sd15_tiny_cat';
  const base = await loadOnnx(fixture('pipelines', 'sd15-tiny'), { cacheDir, threads: 1 });
  const smashed = await smash(base, { fastercache: { unconditional_batch_timestep_skip_range: [-1, 1001] }, int8Dynamic: {} }, { threads: 1 });
  await base.release();
  const a = await smashed.generate(e2eOptions(FX));
  const rebuilt = (r: CacheStepReport[]) => r.filter((s) => s.reused.includes(UNCONDITIONAL)).map((s) => s.step);
  // every fifth call runs the unconditional half (diffusers' unconditional_batch_skip_range 5)
  assert.deepEqual(rebuilt(a.cache!), [1, 2, 3, 4, 6, 7, 8]);
  const dir = join(tmp.dir, 'sd-fast');
  await smashed.save(dir);
  await smashed.release();
  const back = await loadPipeline(dir, { threads: 1 });
  try {
    assert.ok('smashConfig' in back);
    const b = await back.generate(e2eOptions(FX));
    assert.deepEqual(b.images.data, a.images.data);
    assert.deepEqual(rebuilt(b.cache!), rebuilt(a.cache!));
  } finally {
    await back.release();
  }
});
