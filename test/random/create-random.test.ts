import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { registerCreateRandom } from '../../src/cli/commands/create-random.js';
import { ConfigError } from '../../src/errors.js';
import type { Model } from '../../src/ir/graph.js';
import { buildComponent, convert } from '../../src/models/convert.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { createRandomComponent, createRandomPipeline, parseSize, pipelineSpecs, resolveComponent } from '../../src/random/create-random.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { toFloat32 } from '../../src/core/float.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { loadTokenizer } from '../../src/tokenizers/index.js';

const ROOT = mkdtempSync(join(tmpdir(), 'smash-random-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));
const tmp = () => mkdtempSync(join(ROOT, 't-'));

function f32(dims: number[], fill: (i: number) => number): HostTensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
}
const noise = (dims: number[], seed = 1) => f32(dims, (i) => Math.sin(i * 12.9898 + seed * 78.233) * 0.8);
const ids = (dims: number[], values: number[]): HostTensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) });

/** Runs the model and checks every output is finite and not constant. */
async function runChecked(model: Model, feeds: Record<string, HostTensor>, label: string): Promise<Record<string, HostTensor>> {
  const s = await Session.create(model, { threads: 2 });
  try {
    const { outputs } = await s.run(feeds);
    for (const [name, t] of Object.entries(outputs)) {
      const d = t.data as Float32Array;
      assert.ok(d.length > 0, `${label} ${name} empty`);
      let min = Infinity, max = -Infinity;
      for (const v of d) {
        assert.ok(Number.isFinite(v), `${label} ${name} has a non-finite value`);
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (d.length > 1) assert.ok(max - min > 1e-6 * Math.max(1, Math.abs(max)), `${label} ${name} is constant (${min})`);
    }
    return outputs;
  } finally {
    await s.release();
  }
}

test('sd15 at --width-mult 0.125 --depth 1: writes, re-loads, converts and runs', async () => {
  const dir = join(tmp(), 'unet');
  const spec = resolveComponent({ className: 'UNet2DConditionModel', config: 'sd15', widthMult: 0.125, depth: 1 });
  const w = createRandomComponent(dir, spec, { seed: 7 });
  assert.deepEqual(readdirSync(dir).sort(), ['.smash-output.json', 'config.json', 'diffusion_pytorch_model.safetensors']);
  const ck = Checkpoint.open(dir);
  assert.equal(ck.names.length, w.layout.entries.length);
  for (const e of w.layout.entries) assert.deepEqual(ck.entry(e.name)?.shape, e.shape);
  const { model } = buildComponent(dir);
  const cross = spec.config.cross_attention_dim as number;
  await runChecked(model!, { sample: noise([1, 4, 16, 16]), timestep: f32([1], () => 500), encoder_hidden_states: noise([1, 8, cross], 2) }, 'unet');
  // deterministic for a seed
  const again = join(tmp(), 'unet');
  createRandomComponent(again, spec, { seed: 7 });
  assert.deepEqual(readFileSync(join(again, 'diffusion_pytorch_model.safetensors')), readFileSync(join(dir, 'diffusion_pytorch_model.safetensors')));
});

test('flux-dev scaled: writes, converts and runs', async () => {
  const dir = join(tmp(), 'transformer');
  const spec = resolveComponent({ config: 'flux-dev', widthMult: 0.125, depth: 1 });
  createRandomComponent(dir, spec, { seed: 1 });
  const { model } = buildComponent(dir);
  const N = 16, S = 8;
  const imgIds = f32([N, 3], (i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? Math.floor(i / 3 / 4) : (i / 3) % 4));
  await runChecked(model!, {
    hidden_states: noise([1, N, 64]),
    encoder_hidden_states: noise([1, S, spec.config.joint_attention_dim as number], 2),
    pooled_projections: noise([1, spec.config.pooled_projection_dim as number], 3),
    timestep: f32([1], () => 0.5),
    img_ids: imgIds,
    txt_ids: f32([S, 3], () => 0),
    guidance: f32([1], () => 3.5),
  }, 'flux');
});

test('sharding: a small --shard-size gives an index + HF-named shards that load like one file', () => {
  const spec = resolveComponent({ config: 'clip-l', widthMult: 0.1, depth: 2 });
  const one = join(tmp(), 'one');
  const many = join(tmp(), 'many');
  const a = createRandomComponent(one, spec, { seed: 3 });
  const b = createRandomComponent(many, spec, { seed: 3, shardSize: parseSize('1MB') });
  assert.deepEqual(readdirSync(one).sort(), ['.smash-output.json', 'config.json', 'model.safetensors']);
  const files = readdirSync(many).sort();
  const shards = files.filter((f) => f.endsWith('.safetensors'));
  assert.ok(shards.length > 1, files.join(' '));
  shards.forEach((f, i) => assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  assert.ok(files.includes('model.safetensors.index.json'));
  for (const f of shards) assert.ok(SafetensorsFile.open(join(many, f)).entries.size > 0);
  const index = JSON.parse(readFileSync(join(many, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.metadata.total_size, a.layout.bytes);
  assert.equal(b.layout.bytes, a.layout.bytes);
  const c1 = Checkpoint.open(one);
  const c2 = Checkpoint.open(many);
  assert.deepEqual([...c2.names].sort(), [...c1.names].sort());
  for (const n of c1.names) assert.deepEqual(c2.tensor(n).bytes(), c1.tensor(n).bytes(), n);
  // a diffusers class shards under its own stem
  const vae = join(tmp(), 'vae');
  createRandomComponent(vae, resolveComponent({ config: 'vae-flux', widthMult: 0.25, depth: 1 }), { shardSize: 2_000_000 });
  assert.ok(readdirSync(vae).includes('diffusion_pytorch_model.safetensors.index.json'));
  const vaeShards = readdirSync(vae).filter((f) => f.endsWith('.safetensors'));
  assert.ok(vaeShards.length > 1 && vaeShards.every((f) => /^diffusion_pytorch_model-\d{5}-of-\d{5}\.safetensors$/.test(f)), vaeShards.join(' '));
  assert.ok(buildComponent(vae).decoder);
});

test('--dtype fp16 / bf16: files hold F16 / BF16, the same values rounded', () => {
  const spec = resolveComponent({ config: 'vae-sd', widthMult: 0.25, depth: 1 });
  const d32 = join(tmp(), 'f32');
  createRandomComponent(d32, spec, { seed: 5 });
  const ref = Checkpoint.open(d32);
  for (const [dtype, st] of [['float16', 'float16'], ['bfloat16', 'bfloat16']] as const) {
    const d = join(tmp(), dtype);
    createRandomComponent(d, spec, { seed: 5, dtype });
    const ck = Checkpoint.open(d);
    const name = 'decoder.conv_in.weight';
    assert.equal(ck.entry(name)?.dtype, st);
    const a = toFloat32(ck.tensor(name));
    const r = toFloat32(ref.tensor(name));
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - r[i]!) <= Math.abs(r[i]!) * 2 ** -7 + 1e-7, `${dtype} ${i}`);
    assert.ok(buildComponent(d).encoder);
  }
  // a transformers config records the dtype it was saved in
  const t5 = join(tmp(), 't5');
  createRandomComponent(t5, resolveComponent({ config: 't5-xxl', widthMult: 0.02, depth: 1 }), { dtype: 'float16' });
  assert.equal(JSON.parse(readFileSync(join(t5, 'config.json'), 'utf8')).torch_dtype, 'float16');
});

test('errors: unknown preset/class, class mismatch, bad numbers, non-empty --out', () => {
  assert.throws(() => resolveComponent({ config: 'sd9' }), (e: unknown) => e instanceof ConfigError && e.key === 'config' && /sd15/.test(e.message));
  assert.throws(() => resolveComponent({ className: 'AutoencoderKL', config: 'sd15' }), (e: unknown) => e instanceof ConfigError && e.key === 'class' && /UNet2DConditionModel/.test(e.message));
  assert.throws(() => resolveComponent({ config: 'sd15', widthMult: -1 }), (e: unknown) => e instanceof ConfigError && e.key === 'width-mult');
  assert.throws(() => resolveComponent({ config: 'sd15', depth: 0 }), (e: unknown) => e instanceof ConfigError && e.key === 'depth');
  assert.throws(() => parseSize('2 parsecs'), (e: unknown) => e instanceof ConfigError && e.key === 'shard-size');
  assert.equal(parseSize('2GB'), 2e9);
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  const cfgDir = tmp();
  const file = join(cfgDir, 'c.json');
  writeFileSync(file, JSON.stringify({ block_out_channels: [32, 64], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], latent_channels: 4 }));
  assert.throws(() => resolveComponent({ config: file }), (e: unknown) => e instanceof ConfigError && e.key === 'class');
  assert.throws(() => resolveComponent({ className: 'NoSuchModel', config: file }), (e: unknown) => e instanceof ConfigError && e.key === 'class' && /AutoencoderKL/.test(e.message));
  const spec = resolveComponent({ className: 'AutoencoderKL', config: file });
  assert.equal(spec.config._class_name, 'AutoencoderKL');
  const out = join(cfgDir, 'out');
  mkdirSync(out);
  writeFileSync(join(out, 'keep.txt'), 'x');
  assert.throws(() => createRandomComponent(out, spec), (e: unknown) => e instanceof ConfigError && e.key === 'out');
  // --force replaces an earlier output of ours, never a folder with other files in it
  assert.throws(() => createRandomComponent(out, spec, { force: true }), (e: unknown) => e instanceof ConfigError && e.code === 'OUT_NOT_OURS' && /keep\.txt/.test(e.message));
  assert.ok(existsSync(join(out, 'keep.txt')));
  rmSync(join(out, 'keep.txt'));
  createRandomComponent(out, spec);
  createRandomComponent(out, spec, { force: true, seed: 1 });
  assert.deepEqual(readdirSync(out).sort(), ['.smash-output.json', 'config.json', 'diffusion_pytorch_model.safetensors']);
  assert.deepEqual(readdirSync(cfgDir).filter((f) => f.startsWith('.')), [], 'no temporary folder left');
});

test('--pipeline flux-dev (scaled): every component builds, tokenizers load, convert works', async () => {
  const root = tmp();
  const dir = join(root, 'flux');
  const r = createRandomPipeline(dir, 'flux-dev', { widthMult: 0.125, depth: 1, dtype: 'bfloat16' });
  assert.deepEqual(readdirSync(dir).sort(), ['.smash-output.json', 'model_index.json', 'scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'transformer', 'vae']);
  assert.equal(r.components.length, 4);
  const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
  assert.equal(index._class_name, 'FluxPipeline');
  assert.deepEqual(index.tokenizer_2, ['transformers', 'T5TokenizerFast']);
  const sched = JSON.parse(readFileSync(join(dir, 'scheduler', 'scheduler_config.json'), 'utf8'));
  assert.equal(sched.use_dynamic_shifting, true);

  const clipTok = loadTokenizer(join(dir, 'tokenizer'));
  const t5Tok = loadTokenizer(join(dir, 'tokenizer_2'));
  const clipIds = clipTok.encode('a photo of a cat').ids;
  const t5Ids = t5Tok.encode('a photo of a cat', { maxLength: 16 }).ids;
  const t5Cfg = JSON.parse(readFileSync(join(dir, 'text_encoder_2', 'config.json'), 'utf8'));
  assert.ok(t5Ids.every((i) => i < t5Cfg.vocab_size));

  const clip = buildComponent(join(dir, 'text_encoder')).model!;
  const clipOut = await runChecked(clip, { input_ids: ids([1, clipIds.length], clipIds) }, 'clip');
  const t5 = buildComponent(join(dir, 'text_encoder_2')).model!;
  const t5Out = await runChecked(t5, { input_ids: ids([1, t5Ids.length], t5Ids) }, 't5');
  const tr = buildComponent(join(dir, 'transformer')).model!;
  const N = 16;
  const out = await runChecked(tr, {
    hidden_states: noise([1, N, 64]),
    encoder_hidden_states: t5Out.last_hidden_state!,
    pooled_projections: clipOut.pooler_output!,
    timestep: f32([1], () => 1),
    img_ids: f32([N, 3], (i) => (i % 3 === 0 ? 0 : i % 3 === 1 ? Math.floor(i / 12) : Math.floor(i / 3) % 4)),
    txt_ids: f32([t5Ids.length, 3], () => 0),
    guidance: f32([1], () => 3.5),
  }, 'transformer');
  const vae = buildComponent(join(dir, 'vae'));
  const latents = f32([1, 16, 4, 4], (i) => (out.out_hidden_states!.data as Float32Array)[i % (N * 64)]!);
  await runChecked(vae.decoder!, { latent_sample: latents }, 'vae decoder');

  const onnx = join(root, 'onnx');
  const c = convert(dir, onnx);
  assert.ok(c.components.includes('transformer') && c.components.includes('vae_decoder'), c.components.join(' '));
  rmSync(root, { recursive: true, force: true });
});

test('--pipeline sd15 / sdxl / sd3 / flux-schnell (tiny): folders and configs as released', () => {
  const root = tmp();
  for (const [name, want] of [
    ['sd15', ['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']],
    ['sdxl', ['model_index.json', 'scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'unet', 'vae']],
    ['sd3', ['model_index.json', 'scheduler', 'text_encoder', 'text_encoder_2', 'text_encoder_3', 'tokenizer', 'tokenizer_2', 'tokenizer_3', 'transformer', 'vae']],
    ['flux-schnell', ['model_index.json', 'scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'transformer', 'vae']],
  ] as const) {
    const dir = join(root, name);
    createRandomPipeline(dir, name, { widthMult: 0.05, depth: 1 });
    assert.deepEqual(readdirSync(dir).sort(), ['.smash-output.json', ...want], name);
    for (const f of want) if (!f.includes('.') && f !== 'scheduler' && !f.startsWith('tokenizer')) assert.ok(Object.keys(buildComponent(join(dir, f))).length, `${name}/${f}`);
    for (const f of want) if (f.startsWith('tokenizer')) loadTokenizer(join(dir, f));
  }
  const sdxlTok2 = loadTokenizer(join(root, 'sdxl', 'tokenizer_2'));
  assert.equal(sdxlTok2.padTokenId, 0, 'SDXL tokenizer_2 pads with "!"');
  assert.equal(loadTokenizer(join(root, 'sdxl', 'tokenizer')).padTokenId, 49407);
  const unet = JSON.parse(readFileSync(join(root, 'sdxl', 'unet', 'config.json'), 'utf8'));
  const te1 = JSON.parse(readFileSync(join(root, 'sdxl', 'text_encoder', 'config.json'), 'utf8'));
  const te2 = JSON.parse(readFileSync(join(root, 'sdxl', 'text_encoder_2', 'config.json'), 'utf8'));
  assert.equal(unet.cross_attention_dim, te1.hidden_size + te2.hidden_size);
  assert.equal(unet.projection_class_embeddings_input_dim, te2.projection_dim + 6 * 256);
  assert.equal(JSON.parse(readFileSync(join(root, 'flux-schnell', 'scheduler', 'scheduler_config.json'), 'utf8')).use_dynamic_shifting, false);
  rmSync(root, { recursive: true, force: true });
});

test('CLI: smash create-random through registerCreateRandom', async () => {
  const root = tmp();
  const run = async (...args: string[]) => {
    const p = new Command('smash').exitOverride();
    registerCreateRandom(p);
    const out: string[] = [];
    const ow = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string | Uint8Array) => (out.push(String(s)), true)) as typeof process.stdout.write;
    try {
      await p.parseAsync(['create-random', ...args], { from: 'user' });
    } finally {
      process.stdout.write = ow;
    }
    return out.join('');
  };
  const out = await run('--class', 'CLIPTextModel', '--config', 'clip-l', '--width-mult', '0.1', '--depth', '1', '--out', join(root, 'clip'), '--dtype', 'bf16', '--seed', '4');
  assert.match(out, /wrote CLIPTextModel/);
  assert.equal(Checkpoint.open(join(root, 'clip')).entry('text_model.final_layer_norm.weight')?.dtype, 'bfloat16');
  await assert.rejects(run('--config', 'clip-l', '--out', join(root, 'clip')), (e: unknown) => e instanceof ConfigError && e.key === 'out');
  await assert.rejects(run('--config', 'clip-l', '--dtype', 'fp8', '--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'dtype');
  await assert.rejects(run('--config', 'clip-l', '--width-mult', 'abc', '--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'width-mult');
  await assert.rejects(run('--config', 'clip-l', '--depth', '2.5', '--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'depth');
  await assert.rejects(run('--config', 'clip-l', '--seed', 'x', '--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'seed');
  await assert.rejects(run('--pipeline', 'sd9', '--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'pipeline' && /flux-dev/.test(e.message));
  await assert.rejects(run('--out', join(root, 'x')), (e: unknown) => e instanceof ConfigError && e.key === 'config');
  const p = await run('--pipeline', 'sd15', '--width-mult', '0.05', '--depth', '1', '--out', join(root, 'sd15'));
  assert.match(p, /wrote pipeline sd15/);
  assert.ok(existsSync(join(root, 'sd15', 'unet', 'diffusion_pytorch_model.safetensors')));
  assert.ok(!existsSync(join(root, 'x')));
  rmSync(root, { recursive: true, force: true });
});

test('smash generate runs the written tiny sd15 and flux-dev pipelines', async (t) => {
  const mod = await import('../../src/cli/commands/generate.js').catch(() => undefined);
  if (!mod?.registerGenerate) return t.skip('smash generate is not in this checkout');
  const root = tmp();
  const cache = process.env.SMASH_CACHE;
  process.env.SMASH_CACHE = join(root, 'cache');
  const ow = process.stdout.write.bind(process.stdout);
  try {
    for (const name of ['sd15', 'flux-dev'] as const) {
      const dir = join(root, name);
      createRandomPipeline(dir, name, { widthMult: 0.1, depth: 1, seed: 2 });
      const p = new Command('smash').exitOverride();
      mod.registerGenerate(p);
      const png = join(root, `${name}.png`);
      process.stdout.write = (() => true) as typeof process.stdout.write;
      try {
        await p.parseAsync(['generate', '--model', dir, '--prompt', 'a red circle', '--steps', '2', '--width', '64', '--height', '64', '--seed', '1', '--out', png], { from: 'user' });
      } finally {
        process.stdout.write = ow;
      }
      assert.ok(existsSync(png), name);
    }
  } finally {
    if (cache === undefined) delete process.env.SMASH_CACHE;
    else process.env.SMASH_CACHE = cache;
  }
});

test('createRandomPipeline components: an override replaces its folder (full-size CLIP-L beside a scaled T5); a wrong class or folder is refused', () => {
  const specs = (o: Parameters<typeof pipelineSpecs>[2]) => Object.fromEntries(pipelineSpecs('flux-dev', { widthMult: 0.25, depth: 6 }, o).map((s) => [s.folder, s.spec]));
  const scaled = specs({});
  assert.equal(scaled.text_encoder!.config.hidden_size, 192, 'scaled CLIP without an override');
  const clip = resolveComponent({ config: 'clip-l' });
  const over = specs({ text_encoder: clip });
  assert.equal(over.text_encoder!.config.hidden_size, 768);
  assert.deepEqual(over.text_encoder_2, scaled.text_encoder_2, 'the other components keep the scaling');
  assert.throws(() => specs({ vae: clip }), (e: unknown) => e instanceof ConfigError && e.code === 'CLASS_MISMATCH' && /vae/.test(e.message));
  assert.throws(() => specs({ unet: clip }), (e: unknown) => e instanceof ConfigError && /no such component/.test(e.message));
  const dir = join(tmp(), 'p');
  createRandomPipeline(dir, 'flux-dev', { widthMult: 0.05, depth: 1, components: { vae: resolveComponent({ config: 'vae-flux', widthMult: 0.125, depth: 1 }) } });
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'vae', 'config.json'), 'utf8')).block_out_channels, [32, 32, 64, 64]);
});
