// deepcache's branches against DeepCache's own helper. deepcache-helper.safetensors holds what
// DeepCacheSDHelper (horseee/DeepCache, what Pruna's deepcache wraps) gives on a cached step for
// every cache_branch_id of the tiny SD 1.x and SDXL UNets, and which modules ran on that step
// (scripts/fixtures/deepcache_helper_reference.py): the modules our cut runs on a cached step
// must be exactly those, and the If graph's cached call must give the helper's output — on the
// graphs we build and on PyTorch's export of the SD UNet.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../src/errors.js';
import type { Model } from '../../../src/ir/graph.js';
import { loadModel } from '../../../src/ir/model-file.js';
import { buildComponent } from '../../../src/models/convert.js';
import { Session, type Feed, type HostTensor } from '../../../src/runtime/session.js';
import { SafetensorsFile } from '../../../src/tensors/safetensors.js';
import { deepcache, deepCacheModules, deepCacheTransform, unetLayout } from '../../../src/algorithms/cachers/deepcache.js';
import { CACHE_ALWAYS, alwaysModules, unpackModules } from '../../../src/algorithms/cachers/units.js';
import { fixture, readF32, relL2 } from '../../helpers.js';

const HELPER = fileURLToPath(new URL('./deepcache-helper.safetensors', import.meta.url));
const meta = SafetensorsFile.open(HELPER).metadata;
const helperOut = (unet: string, k: string) => readF32(HELPER, `output.${unet}.${k}`).data;

/** batch row `row` of a [2, C, 16, 16] tensor, cropped to [1, C, 8, 8] (as the reference script) */
function crop(t: { data: Float32Array; shape: number[] }, row: number): HostTensor {
  const [, c, h, w] = t.shape as [number, number, number, number];
  const out = new Float32Array(c * 64);
  for (let ch = 0; ch < c; ch++) for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) out[ch * 64 + y * 8 + x] = t.data[((row * c + ch) * h + y) * w + x]!;
  return { dtype: 'float32', dims: [1, c, 8, 8], data: out };
}
const row0 = (t: { data: Float32Array; shape: number[] }): HostTensor => {
  const n = t.data.length / t.shape[0]!;
  return { dtype: 'float32', dims: [1, ...t.shape.slice(1)], data: t.data.slice(0, n) };
};

const UNETS = [
  { key: 'sd15', label: 'built SD 1.x UNet', folder: 'sd15-unet-tiny', make: () => buildComponent(fixture('models', 'sd15-unet-tiny')).model!, numeric: [0, 4, 11] },
  { key: 'sdxl', label: 'built SDXL UNet', folder: 'sdxl-unet-tiny', make: () => buildComponent(fixture('models', 'sdxl-unet-tiny')).model!, numeric: [1] },
  { key: 'sd15', label: 'PyTorch export of the SD 1.x UNet', folder: 'sd15-unet-tiny', make: () => loadModel(fixture('torch-export', 'sd15-tiny', 'unet', 'model.onnx')), numeric: [0] },
] as const;

// the units DeepCache skips or runs: resnets, attentions, samplers and mid_block (not conv_in, time_embedding…)
const isUnit = (m: string) => m === 'mid_block' || /^(down|up)_blocks\./.test(m);

for (const u of UNETS) {
  describe(`deepcache branches on the ${u.label}`, () => {
    const model = u.make();
    const branches = Number(meta[`branches.${u.key}`]);

    test('every cache_branch_id runs on a cached step exactly the modules DeepCacheSDHelper runs', () => {
      const layout = unetLayout(model);
      assert.equal(layout.branches.length, branches);
      // every unit: what the deepest branch runs, and mid_block
      const all = [...(JSON.parse(meta[`ran.${u.key}.b${branches - 1}`]!) as string[]).filter(isUnit), 'mid_block'];
      const expand = (names: string[]) => all.filter((x) => names.some((n) => x === n || x.startsWith(`${n}.`))).sort();
      for (let k = 0; k < branches; k++) {
        const ran = (JSON.parse(meta[`ran.${u.key}.b${k}`]!) as string[]).filter(isUnit).sort();
        const { deep, shallow } = deepCacheModules(model, k, layout);
        assert.deepEqual(expand(shallow), ran, `branch ${k}: runs`);
        assert.deepEqual(expand(deep), all.filter((x) => !ran.includes(x)).sort(), `branch ${k}: skips`);
      }
      // a branch outside the UNet's range is refused, naming the key and the range
      for (const bad of [branches, -1]) {
        assert.throws(() => deepCacheModules(model, bad, layout), (e: unknown) => e instanceof ConfigError && e.key === 'branch' && e.message.includes(`0..${branches - 1}`));
      }
    });

    test(`the If graph's cached call gives DeepCacheSDHelper's output (branches ${u.numeric.join(', ')})`, async () => {
      const ref = fixture('models', u.folder, 'reference.safetensors');
      const sample = readF32(ref, 'input.sample');
      const common: Record<string, HostTensor> = { encoder_hidden_states: row0(readF32(ref, 'input.encoder_hidden_states')) };
      if (u.key === 'sdxl') Object.assign(common, { text_embeds: row0(readF32(ref, 'input.text_embeds')), time_ids: row0(readF32(ref, 'input.time_ids')) });
      const t = (x: number): HostTensor => ({ dtype: 'float32', dims: [1], data: Float32Array.of(x) });
      const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
      const plain = helperOut(u.key, 'plain');
      for (const k of u.numeric) {
        const m: Model = deepCacheTransform(u.make(), k);
        const s = await Session.create(m, { threads: 1 });
        try {
          const ins = s.inputNames.filter((n) => n.startsWith('cache_in/'));
          assert.equal(ins.length, 1, `branch ${k}: one kept feature`);
          const { deep, shallow } = deepCacheModules(model, k);
          assert.deepEqual(unpackModules(ins[0]!.split('/')[1]!), deep, 'the part is named by the modules it skips');
          const placeholder: HostTensor = { dtype: 'float32', dims: [1, 1, 1, 1], data: new Float32Array(1) };
          const full = await s.run({ ...common, sample: crop(sample, 0), timestep: t(999), 'cache.compute': bool(true), [ins[0]!]: placeholder });
          const kept: Feed = full.outputs[ins[0]!.replace('cache_in/', 'cache_out/')]!;
          const cached = (await s.run({ ...common, sample: crop(sample, 1), timestep: t(501), 'cache.compute': bool(false), [ins[0]!]: kept }, ['out_sample'])).outputs.out_sample!.data as Float32Array;
          const want = helperOut(u.key, `b${k}`);
          const e = relL2(cached, want);
          console.log(`${u.label} branch ${k}: cached call vs DeepCacheSDHelper relL2 ${e.toExponential(2)} (vs uncached ${relL2(cached, plain).toExponential(2)})`);
          assert.ok(e < 1e-4, `branch ${k}: relL2 ${e}`);
          assert.ok(relL2(want, plain) > 1e-2, 'the helper\'s cached output differs from the uncached one');
          // the modules that run on every step are declared in the graph, for the report
          assert.deepEqual(alwaysModules(s.outputNames), shallow);
          assert.ok(s.outputNames.some((n) => n.startsWith(CACHE_ALWAYS)));
        } finally {
          await s.release();
        }
      }
    });
  });
}

test('deepcache: branch is a hyperparameter (default 0), checked against the UNet when applied', () => {
  const p = deepcache.schema.parse({});
  assert.equal(p.branch, 0);
  const app = deepcache.apply(deepcache.schema.parse({ branch: 12 }), { className: 'StableDiffusionPipeline', denoiser: 'unet', components: [] });
  const info = { name: 'unet', role: 'denoiser', architecture: 'UNet2DConditionModel' } as const;
  const unet = buildComponent(fixture('models', 'sd15-unet-tiny')).model!;
  assert.throws(() => app.transform!(info, unet), (e: unknown) => e instanceof ConfigError && e.key === 'branch' && /0\.\.11/.test(e.message));
  const ok = deepcache.apply(deepcache.schema.parse({ branch: 11 }), { className: 'StableDiffusionPipeline', denoiser: 'unet', components: [] });
  assert.deepEqual(ok.touches!(info, unet), ['mid_block']);
});
