import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkpointCounts, editedCopy, fixture, readF32, relL2, tempDir } from '../helpers.js';
import { runCli } from '../cli/run-cli.js';
import { Session, f32, i64 } from '../../src/runtime/session.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { tensorData } from '../../src/core/tensor.js';

const work = tempDir('convert-');
const sdOut = join(work, 'sd15');
const fluxOut = join(work, 'flux');

before(async () => {
  for (const [src, out] of [[fixture('pipelines/sd15-tiny'), sdOut], [fixture('pipelines/flux-tiny'), fluxOut]] as const) {
    const r = await runCli(['convert', src, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
  }
});

test('smash convert writes Optimum\'s layout for both pipelines, and inspect reads it', async () => {
  assert.deepEqual(readdirSync(sdOut).sort(), ['.smash-output.json', 'model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae_decoder', 'vae_encoder']);
  assert.deepEqual(readdirSync(fluxOut).sort(), ['.smash-output.json', 'model_index.json', 'scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'transformer', 'vae_decoder', 'vae_encoder']);
  for (const dir of [sdOut, fluxOut]) {
    const r = await runCli(['inspect', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    for (const c of Object.values(j.components) as { inputs: unknown[]; parameters: { count: number } }[]) {
      assert.ok(c.inputs.length > 0);
      assert.ok(c.parameters.count > 0);
    }
  }
  const unet = JSON.parse((await runCli(['inspect', join(sdOut, 'unet'), '--json'])).stdout);
  assert.deepEqual(unet.inputs.map((i: { name: string }) => i.name), ['sample', 'timestep', 'encoder_hidden_states']);
  assert.deepEqual(unet.outputs.map((i: { name: string }) => i.name), ['out_sample']);
  // the converted graph holds exactly the checkpoint's values (counted from its safetensors header)
  assert.equal(unet.parameters.count, checkpointCounts(fixture('pipelines/sd15-tiny/unet')).count);
});

test('converted sd15-tiny unet matches the models/ reference at every timestep', async () => {
  const ref = fixture('models/sd15-unet-tiny/reference.safetensors');
  const s = await Session.create(join(sdOut, 'unet', 'model.onnx'));
  const sample = readF32(ref, 'input.sample');
  const ehs = readF32(ref, 'input.encoder_hidden_states');
  for (const t of [999, 501, 1]) {
    const out = await s.run({ sample: f32(sample.shape, sample.data), timestep: f32([2], [t, t]), encoder_hidden_states: f32(ehs.shape, ehs.data) });
    const err = relL2(out.outputs.out_sample!.data as Float32Array, readF32(ref, `output.sample.t${t}`).data);
    assert.ok(err < 1e-4, `t=${t}: ${err}`);
  }
});

for (const [pipe, model, dir] of [['sd15', 'sd-vae-tiny', () => sdOut], ['flux', 'flux-vae-tiny', () => fluxOut]] as const) {
  test(`converted ${pipe} VAE encoder and decoder match models/${model}`, async () => {
    const ref = fixture(`models/${model}/reference.safetensors`);
    const dec = await Session.create(join(dir(), 'vae_decoder', 'model.onnx'));
    const lat = readF32(ref, 'input.latents');
    const d = await dec.run({ latent_sample: f32(lat.shape, lat.data) });
    assert.ok(relL2(d.outputs.sample!.data as Float32Array, readF32(ref, 'output.decoded').data) < 1e-4);
    const enc = await Session.create(join(dir(), 'vae_encoder', 'model.onnx'));
    const img = readF32(ref, 'input.image');
    const e = await enc.run({ sample: f32(img.shape, img.data) });
    const params = e.outputs.latent_parameters!;
    const c = params.dims[1]! / 2;
    const per = params.dims[2]! * params.dims[3]!;
    const mean: number[] = [];
    const logvar: number[] = [];
    const data = params.data as Float32Array;
    for (let b = 0; b < params.dims[0]!; b++) {
      for (let ch = 0; ch < 2 * c; ch++) {
        const chunk = data.subarray((b * 2 * c + ch) * per, (b * 2 * c + ch + 1) * per);
        (ch < c ? mean : logvar).push(...chunk);
      }
    }
    assert.ok(relL2(mean, readF32(ref, 'output.latent_mean').data) < 1e-4);
    assert.ok(relL2(logvar, readF32(ref, 'output.latent_logvar').data) < 1e-4);
  });
}

test('converted text encoders reproduce the e2e prompt embeddings from the stored ids', async () => {
  const sdRef = fixture('loops/e2e_sd15_tiny_cat.safetensors');
  const f = SafetensorsFile.open(sdRef);
  const ids = (key: string) => {
    const t = f.tensor(key);
    return i64([1, t.shape.at(-1)!], tensorData(t) as BigInt64Array);
  };
  const te = await Session.create(join(sdOut, 'text_encoder', 'model.onnx'));
  const idsKey = f.names.find((n) => n.startsWith('input.') && n.includes('prompt') && n.endsWith('ids') && !n.includes('negative'))!;
  const out = await te.run({ input_ids: ids(idsKey) }, ['last_hidden_state']);
  assert.ok(relL2(out.outputs.last_hidden_state!.data as Float32Array, readF32(sdRef, 'trace.prompt_embeds').data.subarray(0, (out.outputs.last_hidden_state!.data as Float32Array).length)) < 1e-4);

  const fluxRef = fixture('loops/e2e_flux_tiny_fox.safetensors');
  const g = SafetensorsFile.open(fluxRef);
  const gids = (key: string) => i64([1, g.tensor(key).shape.at(-1)!], tensorData(g.tensor(key)) as BigInt64Array);
  const clip = await Session.create(join(fluxOut, 'text_encoder', 'model.onnx'));
  const pooled = (await clip.run({ input_ids: gids('input.clip_input_ids') }, ['pooler_output'])).outputs.pooler_output!;
  assert.ok(relL2(pooled.data as Float32Array, readF32(fluxRef, 'trace.pooled_prompt_embeds').data) < 1e-4);
  const t5 = await Session.create(join(fluxOut, 'text_encoder_2', 'model.onnx'));
  const emb = (await t5.run({ input_ids: gids('input.t5_input_ids') })).outputs.last_hidden_state!;
  assert.ok(relL2(emb.data as Float32Array, readF32(fluxRef, 'trace.prompt_embeds').data) < 1e-4);
});

test('a single component converts into the output folder itself; a VAE into vae_encoder/ and vae_decoder/', async () => {
  const out = join(work, 'clip-only');
  assert.equal((await runCli(['convert', '--model', fixture('models/clip-text-tiny'), '--out', out])).code, 0);
  assert.ok(existsSync(join(out, 'model.onnx')) && existsSync(join(out, 'config.json')));
  const vae = join(work, 'vae-only');
  assert.equal((await runCli(['convert', fixture('models/sd-vae-tiny'), '--out', vae])).code, 0);
  assert.deepEqual(readdirSync(vae).sort(), ['.smash-output.json', 'vae_decoder', 'vae_encoder']);
});

test('--dtype fp16 keeps half-precision weights and float32 inputs/outputs', async () => {
  const out = join(work, 'vae16');
  assert.equal((await runCli(['convert', fixture('models/sd-vae-tiny'), '--out', out, '--dtype', 'fp16'])).code, 0);
  const j = JSON.parse((await runCli(['inspect', join(out, 'vae_decoder'), '--json'])).stdout);
  assert.deepEqual(Object.keys(j.parameters.byDtype).filter((d) => d.startsWith('float')), ['float16']);
  assert.equal(j.inputs[0].dtype, 'float32');
  const ref = fixture('models/sd-vae-tiny/reference.safetensors');
  const lat = readF32(ref, 'input.latents');
  const d = await (await Session.create(join(out, 'vae_decoder', 'model.onnx'))).run({ latent_sample: f32(lat.shape, lat.data) });
  assert.ok(relL2(d.outputs.sample!.data as Float32Array, readF32(ref, 'output.decoded').data) < 1e-2);
});

async function expectError(args: string[], code: string, mention: RegExp) {
  const r = await runCli(args);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(code));
  assert.match(r.stderr, mention);
  assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
}


test('bad sources give clear errors naming the key, tensor or file', async () => {
  const out = () => join(tempDir('conv-out-'), 'o');
  await expectError(['convert', editedCopy(fixture('models/sd15-unet-tiny'), { config: (c) => { c.resnet_time_scale_shift = 'scale_shift'; } }), '--out', out()], 'CONFIG_VALUE', /resnet_time_scale_shift/);
  // a weight missing, and one of the wrong shape
  const { writeSafetensors } = await import('../../src/tensors/safetensors.js');
  const src = fixture('models/clip-text-tiny');
  const st = SafetensorsFile.open(join(src, 'model.safetensors'));
  const missing = editedCopy(src);
  const victim = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
  writeSafetensors(join(missing, 'model.safetensors'), new Map(st.names.filter((n) => n !== victim).map((n) => [n, st.tensor(n)])));
  await expectError(['convert', missing, '--out', out()], 'TENSOR_MISSING', /self_attn\.q_proj\.weight/);
  const wrong = editedCopy(src);
  const other = 'text_model.final_layer_norm.weight';
  writeSafetensors(join(wrong, 'model.safetensors'), new Map(st.names.map((n) => [n, n === victim ? st.tensor(other) : st.tensor(n)])));
  await expectError(['convert', wrong, '--out', out()], 'WEIGHT_SHAPE', /self_attn\.q_proj\.weight/);
  const noConfig = tempDir('conv-nocfg-');
  cpSync(join(src, 'model.safetensors'), join(noConfig, 'model.safetensors'));
  await expectError(['convert', noConfig, '--out', out()], 'CONFIG_MISSING', /config\.json/);
  await expectError(['convert', editedCopy(src, { config: (c) => { c.architectures = ['BertModel']; } }), '--out', out()], 'UNSUPPORTED_ARCHITECTURE', /BertModel/);
});

test('convert never writes into the source and never replaces an output without --force', async () => {
  const src = tempDir('conv-src-');
  cpSync(fixture('models/clip-text-tiny'), src, { recursive: true });
  await expectError(['convert', src, '--out', join(src, 'onnx')], 'OUT_INSIDE_SOURCE', /inside the source/);
  await expectError(['convert', src, '--out', src], 'OUT_CONTAINS_SOURCE', /is or contains the source/);
  assert.deepEqual(readdirSync(src).sort(), ['config.json', 'model.safetensors', 'reference.safetensors']);
  const out = join(work, 'exists');
  assert.equal((await runCli(['convert', src, '--out', out])).code, 0);
  await expectError(['convert', src, '--out', out], 'OUT_EXISTS', /--force/);
  assert.equal((await runCli(['convert', src, '--out', out, '--force'])).code, 0);
});
