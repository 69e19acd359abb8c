import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { ModelFormatError } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { InMemoryTensor } from '../../src/core/tensor.js';
import { buildAutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { editedCopy, fixture, readF32, relL2 } from '../helpers.js';

const TOL = 1e-4;

function build(dir: string): { encoder: Model; decoder: Model; weights: Weights } {
  const weights = new Weights(Checkpoint.open(dir));
  const { encoder, decoder } = buildAutoencoderKL(ModelConfig.load(dir), weights);
  assert.ok(encoder && decoder);
  return { encoder, decoder, weights };
}

async function runOnce(model: Model, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await Session.create(model);
  try {
    return (await s.run(feeds)).outputs;
  } finally {
    await s.release();
  }
}

/** relL2 of every output.* of the fixture's reference: decoded, latent_mean, latent_logvar. */
async function compareWithReference(name: string, models: { encoder: Model; decoder: Model }): Promise<Record<string, number>> {
  const file = fixture('models', name, 'reference.safetensors');
  const outKeys = SafetensorsFile.open(file).names.filter((k) => k.startsWith('output.')).sort();
  assert.deepEqual(outKeys, ['output.decoded', 'output.latent_logvar', 'output.latent_mean']);
  const image = readF32(file, 'input.image');
  const latents = readF32(file, 'input.latents');
  const enc = await runOnce(models.encoder, { sample: { dtype: 'float32', dims: image.shape, data: image.data } });
  const params = enc.latent_parameters!;
  const C = latents.shape[1]!;
  assert.deepEqual(params.dims, [latents.shape[0], 2 * C, latents.shape[2], latents.shape[3]]);
  const half = params.data.length / 2; // batch 1: mean channels first, then logvar
  const dec = await runOnce(models.decoder, { latent_sample: { dtype: 'float32', dims: latents.shape, data: latents.data } });
  const decoded = readF32(file, 'output.decoded');
  assert.deepEqual(dec.sample!.dims, decoded.shape);
  return {
    latent_mean: relL2((params.data as Float32Array).subarray(0, half), readF32(file, 'output.latent_mean').data),
    latent_logvar: relL2((params.data as Float32Array).subarray(half), readF32(file, 'output.latent_logvar').data),
    decoded: relL2(dec.sample!.data as Float32Array, decoded.data),
  };
}

async function withScratch<T>(from: string, edit: Parameters<typeof editedCopy>[1], fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = editedCopy(from, edit);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertAllBelow(errs: Record<string, number>, what: string): void {
  for (const [k, e] of Object.entries(errs)) assert.ok(e < TOL, `${what} ${k}: relL2 ${e}`);
}

const SD_VAE = fixture('models', 'sd-vae-tiny');
const FLUX_VAE = fixture('models', 'flux-vae-tiny');

test('VAE sd-vae-tiny (quant convs, 4 channels): encode and decode match diffusers', async (t) => {
  const m = build(SD_VAE);
  assert.deepEqual(m.weights.unused(), []);
  const errs = await compareWithReference('sd-vae-tiny', m);
  t.diagnostic(`sd-vae-tiny relL2 ${JSON.stringify(errs)}`);
  assertAllBelow(errs, 'sd-vae-tiny');
  assert.deepEqual(m.encoder.graph.inputs.map((v) => v.name), ['sample']);
  assert.deepEqual(m.encoder.graph.outputs.map((v) => v.name), ['latent_parameters']);
  assert.deepEqual(m.decoder.graph.inputs.map((v) => v.name), ['latent_sample']);
  assert.deepEqual(m.decoder.graph.outputs.map((v) => v.name), ['sample']);
  for (const model of [m.encoder, m.decoder]) {
    assert.equal(model.metadataProps.get('diffusers.class_name'), 'AutoencoderKL');
    assert.equal(model.metadataProps.get('scaling_factor'), '0.18215');
    assert.equal(model.metadataProps.has('shift_factor'), false);
  }
});

test('VAE flux-vae-tiny (no quant convs, 16 channels, shift_factor): encode and decode match diffusers', async (t) => {
  const m = build(FLUX_VAE);
  assert.deepEqual(m.weights.unused(), []);
  const errs = await compareWithReference('flux-vae-tiny', m);
  t.diagnostic(`flux-vae-tiny relL2 ${JSON.stringify(errs)}`);
  assertAllBelow(errs, 'flux-vae-tiny');
  for (const model of [m.encoder, m.decoder]) {
    assert.equal(model.metadataProps.get('scaling_factor'), '0.3611');
    assert.equal(model.metadataProps.get('shift_factor'), '0.1159');
  }
  const names = new Set([...m.encoder.graph.nodeList(), ...m.decoder.graph.nodeList()].map((n) => n.name));
  assert.ok(![...names].some((n) => n.includes('quant_conv')));
});

test('VAE: logvar is clamped to [-30, 20] as DiagonalGaussianDistribution does', async () => {
  // scale quant_conv's logvar half so the raw logvar leaves the clamp range
  await withScratch(SD_VAE, {
    tensors: (m) => {
      const w = m.get('quant_conv.weight')!;
      const data = Float32Array.from(new Float32Array(w.bytes().slice().buffer));
      for (let i = 4 * 8; i < 8 * 8; i++) data[i]! *= 1e4;
      m.set('quant_conv.weight', new InMemoryTensor('float32', [8, 8, 1, 1], data));
    },
  }, async (dir) => {
    const { encoder } = build(dir);
    const image = readF32(fixture('models', 'sd-vae-tiny', 'reference.safetensors'), 'input.image');
    const out = (await runOnce(encoder, { sample: { dtype: 'float32', dims: image.shape, data: image.data } })).latent_parameters!;
    const logvar = (out.data as Float32Array).subarray(out.data.length / 2);
    assert.ok(logvar.every((x) => x >= -30 && x <= 20));
    assert.ok(logvar.some((x) => x === -30) && logvar.some((x) => x === 20));
  });
});

test('VAE: decoding the Euler loop latents reproduces the loop image', async (t) => {
  const file = fixture('loops', 'loop_sd15_euler_cfg.safetensors');
  const latents = readF32(file, 'trace.latents.7');
  const image = readF32(file, 'output.image');
  const scaled = latents.data.map((x) => x / 0.18215);
  const out = (await runOnce(build(SD_VAE).decoder, { latent_sample: { dtype: 'float32', dims: latents.shape, data: scaled } })).sample!;
  const pixels = (out.data as Float32Array).map((x) => Math.min(1, Math.max(0, x / 2 + 0.5)));
  const err = relL2(pixels, image.data);
  t.diagnostic(`loop_sd15_euler_cfg image relL2 ${err.toExponential(2)}`);
  assert.ok(err < 1e-3, `relL2 ${err}`);
});

test('VAE: quant convs follow use_quant_conv, or the weights when the key is absent', async () => {
  // keys absent, weights present: built with quant convs, still exact
  await withScratch(SD_VAE, { config: (c) => { delete c.use_quant_conv; delete c.use_post_quant_conv; } }, async (dir) => {
    const m = build(dir);
    assert.ok(m.encoder.graph.nodeList().some((n) => n.name === '/quant_conv/Conv'));
    assert.ok(m.decoder.graph.nodeList().some((n) => n.name === '/post_quant_conv/Conv'));
    assertAllBelow(await compareWithReference('sd-vae-tiny', m), 'sd-vae-tiny without use_quant_conv keys');
  });
  // keys absent, weights absent (older Flux-style folders): built without
  await withScratch(FLUX_VAE, { config: (c) => { delete c.use_quant_conv; delete c.use_post_quant_conv; } }, async (dir) => {
    assertAllBelow(await compareWithReference('flux-vae-tiny', build(dir)), 'flux-vae-tiny without use_quant_conv keys');
  });
  // the config asks for them and they are missing: the tensor is named
  await withScratch(FLUX_VAE, { config: (c) => { c.use_quant_conv = true; } }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'TENSOR_MISSING' && e.message.includes('quant_conv.weight'));
  });
});

test('VAE: attention weights saved under the pre-0.14 names (query/key/value/proj_attn) are read', async () => {
  const rename: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
  await withScratch(SD_VAE, {
    tensors: (m) => {
      for (const name of [...m.keys()]) {
        const hit = /^(.*\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(name);
        if (hit) {
          m.set(`${hit[1]}.${rename[hit[2]!]}.${hit[3]}`, m.get(name)!);
          m.delete(name);
        }
      }
    },
  }, async (dir) => {
    const m = build(dir);
    assert.deepEqual(m.weights.unused(), []);
    assert.ok(m.decoder.graph.initializers.has('decoder.mid_block.attentions.0.proj_attn.weight'));
    assertAllBelow(await compareWithReference('sd-vae-tiny', m), 'legacy names');
  });
});

test('VAE: node names follow the module path, initializers are the checkpoint names', () => {
  const { encoder, decoder, weights } = build(SD_VAE);
  const names = new Set([...encoder.graph.nodeList(), ...decoder.graph.nodeList()].map((n) => n.name));
  for (const n of names) assert.match(n, /^\/([A-Za-z0-9_.]+\/)*[A-Za-z]+(_\d+)?$/, n);
  for (const expected of [
    '/encoder/conv_in/Conv',
    '/encoder/down_blocks.0/resnets.0/conv1/Conv',
    '/encoder/down_blocks.0/downsamplers.0/conv/Conv',
    '/encoder/mid_block/attentions.0/to_q/MatMul',
    '/quant_conv/Conv',
    '/post_quant_conv/Conv',
    '/decoder/mid_block/attentions.0/group_norm/InstanceNormalization',
    '/decoder/up_blocks.0/upsamplers.0/Resize',
    '/decoder/up_blocks.1/resnets.0/conv_shortcut/Conv',
    '/decoder/conv_out/Conv',
  ]) assert.ok(names.has(expected), `no node ${expected}`);
  const inits = new Set([...encoder.graph.initializers.keys(), ...decoder.graph.initializers.keys()]);
  for (const name of weights.checkpoint.names) assert.ok(inits.has(name), `initializer ${name}`);
  assert.ok([...encoder.graph.initializers.keys()].every((k) => !k.startsWith('decoder.')));
  assert.ok([...decoder.graph.initializers.keys()].every((k) => !k.startsWith('encoder.')));
});

test('VAE: unsupported config values fail naming the key', async () => {
  const cases: [string, unknown][] = [
    ['down_block_types', ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D']],
    ['up_block_types', ['UpDecoderBlock2D']],
    ['act_fn', 'tanh'],
    ['norm_num_groups', 5],
    ['block_out_channels', []],
    ['mid_block_add_attention', 'yes'],
  ];
  for (const [key, value] of cases) {
    await withScratch(SD_VAE, { config: (c) => { c[key] = value; } }, (dir) => {
      assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'CONFIG_VALUE' && e.message.includes(`'${key}'`), key);
    });
  }
});

test('VAE: a missing or misshapen weight fails naming the tensor', async () => {
  const missing = 'decoder.mid_block.attentions.0.to_q.weight';
  await withScratch(SD_VAE, { tensors: (m) => m.delete(missing) }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'TENSOR_MISSING' && e.message.includes(missing));
  });
  const bad = 'encoder.conv_out.weight';
  await withScratch(SD_VAE, { tensors: (m) => m.set(bad, new InMemoryTensor('float32', [4, 32, 3, 3], new Float32Array(4 * 32 * 9))) }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'WEIGHT_SHAPE' && e.message.includes(bad));
  });
  // latent_channels that disagrees with the weights
  await withScratch(SD_VAE, { config: (c) => { c.latent_channels = 16; } }, (dir) => {
    assert.throws(() => build(dir), (e: unknown) => e instanceof ModelFormatError && e.code === 'WEIGHT_SHAPE');
  });
});

test('VAE: pipeline and trained vae folders build and run', async () => {
  for (const dir of [
    fixture('pipelines', 'sd15-tiny', 'vae'),
    fixture('pipelines', 'flux-tiny', 'vae'),
    fixture('trained', 'shapes-sd', 'vae'),
    fixture('trained', 'shapes-flux', 'vae'),
  ]) {
    const m = build(dir);
    assert.deepEqual(m.weights.unused(), [], dir);
    const C = ModelConfig.load(dir).int('latent_channels');
    const image: HostTensor = { dtype: 'float32', dims: [1, 3, 32, 32], data: new Float32Array(3 * 1024).map((_, i) => Math.sin(i * 0.05)) };
    const params = (await runOnce(m.encoder, { sample: image })).latent_parameters!;
    assert.deepEqual(params.dims, [1, 2 * C, 16, 16]);
    const mean = params.data.slice(0, C * 256) as Float32Array;
    const out = (await runOnce(m.decoder, { latent_sample: { dtype: 'float32', dims: [1, C, 16, 16], data: mean } })).sample!;
    assert.deepEqual(out.dims, [1, 3, 32, 32]);
    assert.ok((out.data as Float32Array).every(Number.isFinite), dir);
  }
});
