/**
 * adaptFeed against every denoiser input signature Optimum has shipped (read from its
 * model_configs.py and input_generators.py, per release) and ours: the feeds our pipelines build
 * (one timestep per batch row, float32; ids as float32 [N,3]) must come out as the graph declares.
 * SD 1.x and Flux also run on real exports in test/pipelines/optimum-export.test.ts; SDXL and SD3
 * have no pipeline yet, so their declarations are checked here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompatibilityError, ModelFormatError } from '../../src/errors.js';
import { adaptFeed, type InputSpec } from '../../src/runtime/adapt.js';
import { f32, type HostTensor } from '../../src/runtime/session.js';

const dyn = undefined;
type Decl = Record<string, Omit<InputSpec, 'name'>>;

const SD_COMMON: Decl = {
  sample: { dtype: 'float32', dims: [dyn, 4, dyn, dyn] },
  encoder_hidden_states: { dtype: 'float32', dims: [dyn, dyn, 768] },
};
const SDXL_ADDED: Decl = {
  text_embeds: { dtype: 'float32', dims: [dyn, 1280] },
  time_ids: { dtype: 'float32', dims: [dyn, 6] },
};
const SD3_COMMON: Decl = {
  hidden_states: { dtype: 'float32', dims: [dyn, 16, dyn, dyn] },
  encoder_hidden_states: { dtype: 'float32', dims: [dyn, dyn, 4096] },
  pooled_projections: { dtype: 'float32', dims: [dyn, 2048] },
};
const FLUX_COMMON: Decl = {
  hidden_states: { dtype: 'float32', dims: [dyn, dyn, 64] },
  encoder_hidden_states: { dtype: 'float32', dims: [dyn, dyn, 4096] },
  pooled_projections: { dtype: 'float32', dims: [dyn, 768] },
  timestep: { dtype: 'float32', dims: [dyn] }, // {0: "step"}
  guidance: { dtype: 'float32', dims: [dyn] },
};

const SIGNATURES: { name: string; kind: 'unet' | 'sdxl' | 'sd3' | 'flux'; inputs: Decl }[] = [
  { name: 'SD UNet, smash convert (timestep [batch] float32)', kind: 'unet', inputs: { ...SD_COMMON, timestep: { dtype: 'float32', dims: [dyn] } } },
  { name: 'SD UNet, Optimum <= 1.23 (timestep int64 [steps])', kind: 'unet', inputs: { ...SD_COMMON, timestep: { dtype: 'int64', dims: [dyn] } } },
  { name: 'SD UNet, Optimum >= 1.24 / optimum-onnx (timestep float32 scalar)', kind: 'unet', inputs: { ...SD_COMMON, timestep: { dtype: 'float32', dims: [] } } },
  { name: 'LCM UNet, optimum-onnx (scalar timestep, timestep_cond)', kind: 'unet', inputs: { ...SD_COMMON, timestep: { dtype: 'float32', dims: [] }, timestep_cond: { dtype: 'float32', dims: [dyn, 256] } } },
  { name: 'SDXL UNet, Optimum <= 1.23 (timestep int64 [steps])', kind: 'sdxl', inputs: { ...SD_COMMON, ...SDXL_ADDED, timestep: { dtype: 'int64', dims: [dyn] } } },
  { name: 'SDXL UNet, Optimum >= 1.24 / optimum-onnx (timestep float32 scalar)', kind: 'sdxl', inputs: { ...SD_COMMON, ...SDXL_ADDED, timestep: { dtype: 'float32', dims: [] } } },
  { name: 'SD3 transformer, Optimum >= 1.24 / optimum-onnx (timestep float32 [step])', kind: 'sd3', inputs: { ...SD3_COMMON, timestep: { dtype: 'float32', dims: [dyn] } } },
  { name: 'Flux transformer, exported with diffusers >= 0.31 (ids int64 [seq,3])', kind: 'flux', inputs: { ...FLUX_COMMON, img_ids: { dtype: 'int64', dims: [dyn, 3] }, txt_ids: { dtype: 'int64', dims: [dyn, 3] } } },
  { name: 'Flux transformer, exported with diffusers < 0.31 (ids int64 [batch,seq,3])', kind: 'flux', inputs: { ...FLUX_COMMON, img_ids: { dtype: 'int64', dims: [dyn, dyn, 3] }, txt_ids: { dtype: 'int64', dims: [dyn, dyn, 3] } } },
];

/** The feeds our pipelines build for one step of a batch of `rows` (guidance: 2 × prompts). */
function feeds(kind: string, rows: number, t: number): Record<string, HostTensor> {
  const z = (dims: number[]) => f32(dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));
  const timestep = f32([rows], new Float32Array(rows).fill(t));
  if (kind === 'flux') {
    const ids = f32([16, 3], Float32Array.from({ length: 48 }, (_, i) => i % 3 && Math.floor(i / 3)));
    return { hidden_states: z([rows, 16, 64]), encoder_hidden_states: z([rows, 8, 4096]), pooled_projections: z([rows, 768]), timestep, guidance: f32([rows], new Float32Array(rows).fill(3.5)), img_ids: ids, txt_ids: z([8, 3]) };
  }
  if (kind === 'sd3') return { hidden_states: z([rows, 16, 8, 8]), encoder_hidden_states: z([rows, 10, 4096]), pooled_projections: z([rows, 2048]), timestep };
  const f: Record<string, HostTensor> = { sample: z([rows, 4, 8, 8]), encoder_hidden_states: z([rows, 77, 768]), timestep, timestep_cond: z([rows, 256]) };
  if (kind === 'sdxl') Object.assign(f, { text_embeds: z([rows, 1280]), time_ids: z([rows, 6]) });
  return f;
}

/** What onnxruntime checks of a feed: dtype, rank, fixed dims, element count. */
function assertFits(t: HostTensor, spec: InputSpec): void {
  assert.equal(t.dtype, spec.dtype, `${spec.name} dtype`);
  assert.equal(t.dims.length, spec.dims!.length, `${spec.name} rank: [${t.dims.join(', ')}]`);
  spec.dims!.forEach((d, i) => { if (typeof d === 'number') assert.equal(t.dims[i], d, `${spec.name} dim ${i}`); });
  assert.equal(t.data.length, t.dims.reduce((a, b) => a * b, 1), `${spec.name} element count`);
}

for (const sig of SIGNATURES) {
  for (const rows of [1, 2]) {
    test(`${sig.name}: our feeds for a batch of ${rows} fit`, () => {
      const t = 801.25;
      for (const [name, raw] of Object.entries(feeds(sig.kind, rows, t))) {
        const decl = sig.inputs[name];
        if (!decl) continue; // e.g. timestep_cond: fed only to graphs that declare it
        const spec = { name, ...decl };
        const got = adaptFeed(raw, spec);
        assertFits(got, spec);
        if (name !== 'timestep') continue;
        // every row (or the one shared scalar) carries the step's timestep; int64 truncates, as Optimum's pipelines' astype does
        const want = spec.dtype === 'int64' ? 801n : t;
        assert.deepEqual(Array.from(got.data as ArrayLike<number | bigint>), new Array(spec.dims!.length === 0 ? 1 : rows).fill(want));
      }
    });
  }
}

test('a scalar timestep cannot take different values per batch row: CompatibilityError naming the input', () => {
  const spec: InputSpec = { name: 'timestep', dtype: 'float32', dims: [] };
  assert.throws(() => adaptFeed(f32([2], [999, 979]), spec), (e: unknown) => {
    assert.ok(e instanceof CompatibilityError, String(e));
    assert.equal(e.code, 'INPUT_SCALAR');
    assert.match(e.message, /'timestep'.*999, 979/);
    return true;
  });
  // int64 feeds are compared as they are given (no float rounding merges distinct values)
  assert.throws(() => adaptFeed({ dtype: 'int64', dims: [3], data: BigInt64Array.of(5n, 5n, 6n) }, { ...spec, dtype: 'int64' }), CompatibilityError);
  assert.throws(() => adaptFeed(f32([0], []), spec), CompatibilityError);
  // rank 2 into a scalar is not a per-row vector: a rank error, as before
  assert.throws(() => adaptFeed(f32([2, 1], [1, 1]), spec), (e: unknown) => e instanceof ModelFormatError && e.code === 'INPUT_RANK' && /timestep/.test(e.message));
});
