import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CompatibilityError, ConfigError } from '../../src/errors.js';
import { loadModel } from '../../src/ir/model-file.js';
import { loadPipeline as loadOnnx } from '../../src/pipelines/loader.js';
import { loadPipeline, smash, SMASH_CONFIG_FILE } from '../../src/smash/smash.js';
import { fixture, relL2 } from '../helpers.js';
import { e2eOptions, tempDir } from '../pipelines/fixtures.js';

const tmp = tempDir('bundle');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');
const RECIPE = { int8Dynamic: {}, qkv: {}, ortCompile: {} };

for (const [pipeline, fx, denoiser] of [['flux-tiny', 'e2e_flux_tiny_fox', 'transformer'], ['sd15-tiny', 'e2e_sd15_tiny_cat', 'unet']] as const) {
  test(`${pipeline} with int8Dynamic + qkv + ortCompile: saved, loaded in a new process, the same image bit for bit`, async () => {
    const base = await loadOnnx(fixture('pipelines', pipeline), { cacheDir, threads: 1 });
    const smashed = await smash(base, RECIPE, { threads: 1 });
    const a = await smashed.generate(e2eOptions(fx));
    const b = await base.generate(e2eOptions(fx));
    await base.release();
    const drift = relL2(a.images.data, b.images.data);
    console.log(`${pipeline} smashed vs base: relL2 ${drift.toExponential(2)}`);
    assert.ok(drift > 0 && drift < 5e-2, `smashed vs base relL2 ${drift}`);

    const dir = join(tmp.dir, `${pipeline}-smashed`);
    await smashed.save(dir);
    await smashed.release();
    // the bundle holds the transformed graph and the resolved config
    const g = loadModel(join(dir, denoiser, 'model.onnx'));
    const ops = new Set(g.graph.nodeList().map((n) => n.opType));
    for (const op of ['DynamicQuantizeMatMul', 'MultiHeadAttention', 'Split']) assert.ok(ops.has(op), `${op} in the saved ${denoiser}`);
    // ortCompile saved ONNX Runtime's optimized graph: its own fusions (SiLU → QuickGelu) are in it
    assert.ok(ops.has('QuickGelu'), `ONNX Runtime's fusions in the saved ${denoiser}: ${[...ops].join(', ')}`);
    const saved = JSON.parse(readFileSync(join(dir, SMASH_CONFIG_FILE), 'utf8'));
    assert.deepEqual(Object.keys(saved.algorithms), ['qkv', 'int8Dynamic', 'ortCompile']);
    assert.equal(saved.versions['onnxruntime-node'], '1.30.0');

    const out = join(tmp.dir, `${pipeline}.f32`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'generate-bundle.ts'), dir, fx, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const c = new Float32Array(readFileSync(out).buffer.slice(0));
    assert.deepEqual(c, a.images.data, 'the reloaded bundle draws the in-memory picture bit for bit');
  });
}

test('saving never overwrites a user\'s folder, only an earlier bundle when asked; invalid configs fail before any work', async () => {
  const base = await loadOnnx(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1 });
  try {
    await assert.rejects(smash(base, { int8Dynamic: {} }, { provider: 'webgpu' }), (e: unknown) => e instanceof CompatibilityError && e.code === 'UNSUPPORTED' && /DynamicQuantizeMatMul/.test(e.message));
    await assert.rejects(smash(base, { fasterFora: {} }), (e: unknown) => e instanceof ConfigError && e.code === 'UNKNOWN_ALGORITHM');
    await assert.rejects(smash(base, { int8Dynamic: {}, int4WeightOnly: {} }), (e: unknown) => e instanceof CompatibilityError && e.code === 'INCOMPATIBLE');
    const smashed = await smash(base, { qkv: {} }, { threads: 1 });
    const dir = join(tmp.dir, 'occupied');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    await assert.rejects(smashed.save(dir), (e: unknown) => e instanceof ConfigError && e.code === 'OUT_EXISTS');
    await assert.rejects(smashed.save(dir, { overwrite: true }), (e: unknown) => e instanceof ConfigError && e.code === 'OUT_NOT_OURS' && e.message.includes('keep.txt'));
    assert.equal(readFileSync(join(dir, 'keep.txt'), 'utf8'), 'mine');
    const bundle = join(tmp.dir, 'bundle');
    await smashed.save(bundle);
    await smashed.save(bundle, { overwrite: true });
    assert.ok(existsSync(join(bundle, SMASH_CONFIG_FILE)));
    await assert.rejects(smashed.save(join(tmp.dir, 'cache')), (e: unknown) => e instanceof ConfigError && e.code === 'OUT_CONTAINS_SOURCE');
    assert.deepEqual(readdirSync(tmp.dir).filter((f) => f.includes('.tmp-')), [], 'no temporary folder left');
    const again = await loadPipeline(bundle, { threads: 1 });
    assert.ok('smashConfig' in again && again.smashConfig.has('qkv'));
    await again.release();
    await smashed.release();
  } finally {
    await base.release();
  }
});
