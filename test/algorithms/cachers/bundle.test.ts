// Cachers through smash(): combined with the quantizer, qkv and ortCompile, saved as a bundle and
// loaded in a new process (the wrapper re-armed from the saved graph's names), the same image.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../../src/ir/model-file.js';
import { allNodes } from '../../../src/ir/graph.js';
import { loadPipeline as loadOnnx } from '../../../src/pipelines/loader.js';
import { smash } from '../../../src/smash/smash.js';
import { fixture, relL2 } from '../../helpers.js';
import { e2eOptions, tempDir } from '../../pipelines/fixtures.js';

const tmp = tempDir('cacher-bundle');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');
const FX = 'e2e_flux_tiny_fox';

for (const recipe of [{ fora: {}, int8Dynamic: {} }, { fbcache: { threshold: 0.08 }, int8Dynamic: {}, qkv: {}, ortCompile: {} }, { teacache: {}, qkv: {}, ortCompile: {} }]) {
  const label = Object.keys(recipe).join(' + ');
  test(`flux-tiny with ${label}: saved, loaded in a new process, the same image bit for bit`, async () => {
    const base = await loadOnnx(fixture('pipelines', 'flux-tiny'), { cacheDir, threads: 1 });
    const smashed = await smash(base, recipe, { threads: 1 });
    const a = await smashed.generate(e2eOptions(FX));
    const plain = await base.generate(e2eOptions(FX));
    await base.release();
    assert.ok(a.cache?.length === a.timings.stepsMs.length, 'the result reports the cache decisions');
    const drift = relL2(a.images.data, plain.images.data);
    console.log(`${label}: reused ${a.cache!.filter((s) => s.reused.length).length}/${a.cache!.length} steps, relL2 vs base ${drift.toExponential(2)}`);
    assert.ok(drift < 0.2, `relL2 ${drift}`);
    const dir = join(tmp.dir, label.replace(/\W+/g, '-'));
    await smashed.save(dir);
    await smashed.release();
    const saved = loadModel(join(dir, 'transformer', 'model.onnx')).graph;
    const ops = new Set([...allNodes(saved)].map((n) => n.opType));
    // what the report names as always computed travels in the saved graph (fbcache: block 0; teacache: its norm1; fora: every block)
    const always = saved.outputs.map((o) => o.name).filter((n) => n.startsWith('cache.always/'));
    assert.deepEqual(always, ['fbcache' in recipe ? 'cache.always/transformer_blocks.0' : 'teacache' in recipe ? 'cache.always/transformer_blocks.0.norm1' : 'cache.always/transformer_blocks.0-1+single_transformer_blocks.0-2']);
    assert.ok(a.cache!.every((s) => s.computed.includes('transformer_blocks.0') || s.computed.includes('transformer_blocks.0.norm1')));
    assert.ok(ops.has('If'), 'the saved transformer holds the If regions');
    if ('int8Dynamic' in recipe) assert.ok(ops.has('DynamicQuantizeMatMul'));
    const out = join(tmp.dir, `${label.replace(/\W+/g, '-')}.f32`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', '..', 'smash', 'generate-bundle.ts'), dir, FX, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const c = new Float32Array(readFileSync(out).buffer.slice(0));
    assert.deepEqual(c, a.images.data, 'the reloaded bundle draws the in-memory picture bit for bit');
  });
}
