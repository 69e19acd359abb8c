import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fp16 } from '../../src/algorithms/quantizers/fp16.js';
import { buildComponent } from '../../src/models/convert.js';
import { modulePath } from '../../src/ir/modules.js';
import { fixture, relL2 } from '../helpers.js';
import { fluxDenoiser, runOnce } from './denoisers.js';

const apply = (keep: string[] = []) => fp16.apply({ keep }, { className: 'FluxPipeline', denoiser: 'flux', components: [] });

test('fp16 on Flux: float16 weights, float32 inputs and outputs, output within 1e-2 on CPU; kept modules stay float32', async () => {
  const d = fluxDenoiser();
  const ref = await runOnce(d.build(), d);
  const m = apply(['proj_out']).transform!(d.component, d.build());
  const dtypes = new Map<string, string>();
  for (const [k, v] of m.graph.initializers) dtypes.set(k, v.const!.dtype);
  assert.equal(dtypes.get('transformer_blocks.0.attn.to_q.weight'), 'float16');
  assert.equal(dtypes.get('proj_out.weight'), 'float32', 'a kept module keeps its float32 weight');
  assert.ok([...m.graph.nodeList()].filter((n) => modulePath(n) === 'proj_out').every((n) => n.outputs.every((o) => o.dtype !== 'float16')));
  assert.deepEqual(m.graph.inputs.filter((v) => v.dtype === 'float16'), []);
  assert.deepEqual(m.graph.outputs.map((v) => v.dtype), ['float32']);
  const err = relL2(await runOnce(m, d), ref);
  console.log(`fp16 flux-transformer-tiny: relL2 ${err.toExponential(2)}`);
  assert.ok(err < 1e-2, `relL2 ${err}`);
});

test('fp16 leaves a VAE whose config says force_upcast in float32, as diffusers does', () => {
  const vae = buildComponent(fixture('models', 'sd-vae-tiny'));
  for (const [key, m] of Object.entries(vae)) {
    m.metadataProps.set('force_upcast', 'true');
    const out = apply().transform!({ name: `vae_${key}`, role: key === 'decoder' ? 'vae_decoder' : 'vae_encoder', architecture: 'AutoencoderKL' }, m);
    assert.ok([...out.graph.initializers.values()].every((v) => v.const!.dtype === 'float32'), key);
  }
  const m = buildComponent(fixture('models', 'sd-vae-tiny')).decoder!;
  m.metadataProps.set('force_upcast', 'false');
  const out = apply().transform!({ name: 'vae_decoder', role: 'vae_decoder', architecture: 'AutoencoderKL' }, m);
  assert.ok([...out.graph.initializers.values()].some((v) => v.const!.dtype === 'float16'));
});
