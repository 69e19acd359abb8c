import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.js';
import { presetLayout, resolveComponent, pipelineSpecs } from '../../src/random/create-random.js';
import { generate, initFor, hashName } from '../../src/random/init.js';
import { PRESETS, presetNames } from '../../src/random/presets.js';
import { scaleConfig } from '../../src/random/scale.js';
import { f32ToBf16, f32ToF16 } from '../../src/core/float.js';

// Parameter counts from the layouts alone (no weights written), against the released checkpoints'
// own figures, never our builder's: each `source` says where the figure comes from (a published
// count, the sum of numel over the released weights as torch reports it, or a sharded
// checkpoint's index.json `total_size` in bytes divided by the bytes per value). Tensor counts
// are the released files' entries where a source gives them (sd15/sd2 686, sdxl 1680, clip-g
// 517, vae-sd 248, vae-flux 244); the others are pinned from the layout so a change shows.
const COUNTS: Record<string, { parameters: number; tensors: number; source: string }> = {
  sd15: { parameters: 859_520_964, tensors: 686, source: 'SD 1.5 UNet: sum(p.numel()) of the released unet' },
  sd2: { parameters: 865_910_724, tensors: 686, source: 'SD 2.x UNet: the released unet\'s flat parameter buffer' },
  sdxl: { parameters: 2_567_463_684, tensors: 1680, source: 'SDXL base UNet: sum(p.numel()), 1680 tensors' },
  'sd3-medium': { parameters: 2_028_328_000, tensors: 683, source: 'stable-diffusion-3-medium-diffusers transformer: parameter count of the loaded module' },
  'flux-dev': { parameters: 11_901_408_320, tensors: 1160, source: 'FLUX.1-dev transformer index.json total_size 23,802,816,640 bytes of BF16 / 2' },
  'flux-schnell': { parameters: 11_891_178_560, tensors: 1156, source: 'FLUX.1-schnell transformer index.json total_size 23,782,357,120 bytes of BF16 / 2' },
  'clip-l': { parameters: 123_060_480, tensors: 196, source: 'SD 1.5 text_encoder (CLIPTextModel ViT-L/14): sum(p.numel())' },
  'clip-h': { parameters: 340_387_840, tensors: 372, source: 'SD 2.x text_encoder (OpenCLIP ViT-H text tower): the released flat parameter buffer' },
  'clip-g': { parameters: 694_659_840, tensors: 517, source: 'SDXL/SD3 text_encoder_2 (CLIPTextModelWithProjection bigG): parameter count, 517 tensors' },
  't5-xxl': { parameters: 4_762_310_656, tensors: 219, source: 'FLUX.1 text_encoder_2 index.json total_size 9,524,621,312 bytes of BF16 / 2 (SD3 text_encoder_3 reports the same)' },
  'vae-sd': { parameters: 83_653_863, tensors: 248, source: 'SD 1.5 / SDXL vae (AutoencoderKL): sum(p.numel()), 248 tensors' },
  'vae-flux': { parameters: 83_819_683, tensors: 244, source: 'FLUX.1 ae / vae: 244 tensors, 83,819,683 values' },
};

for (const [name, want] of Object.entries(COUNTS)) {
  test(`preset ${name}: ${want.parameters.toLocaleString('en-US')} parameters in ${want.tensors} tensors`, () => {
    const l = presetLayout(name);
    assert.equal(l.parameters, want.parameters, want.source);
    assert.equal(l.entries.length, want.tensors);
    assert.equal(new Set(l.entries.map((e) => e.name)).size, l.entries.length);
  });
}

test('every preset builds, and its class is the config\'s', () => {
  for (const p of PRESETS) {
    const l = presetLayout(p.name);
    assert.equal(l.className, p.className, p.name);
    assert.ok(l.entries.length > 0);
  }
  assert.ok(presetNames().includes('sd3-medium'));
});

test('layouts name tensors as the released checkpoints do', () => {
  const unet = new Map(presetLayout('sd15').entries.map((e) => [e.name, e.shape]));
  assert.deepEqual(unet.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight'), [320, 768]);
  assert.deepEqual(unet.get('conv_in.weight'), [320, 4, 3, 3]);
  const flux = new Map(presetLayout('flux-dev').entries.map((e) => [e.name, e.shape]));
  assert.deepEqual(flux.get('single_transformer_blocks.37.proj_out.weight'), [3072, 15360]);
  assert.deepEqual(flux.get('time_text_embed.guidance_embedder.linear_1.weight'), [3072, 256]);
  assert.ok(!presetLayout('flux-schnell').entries.some((e) => e.name.includes('guidance_embedder')));
  const t5 = new Map(presetLayout('t5-xxl').entries.map((e) => [e.name, e.shape]));
  assert.deepEqual(t5.get('shared.weight'), [32128, 4096]);
  assert.deepEqual(t5.get('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), [32, 64]);
  const sd3 = presetLayout('sd3-medium');
  assert.equal(sd3.values - sd3.parameters, 192 * 192 * 1536, 'pos_embed is a stored buffer');
  const vae = new Set(presetLayout('vae-sd').entries.map((e) => e.name));
  assert.ok(vae.has('quant_conv.weight') && vae.has('post_quant_conv.weight'));
  assert.ok(!presetLayout('vae-flux').entries.some((e) => e.name.includes('quant_conv')));
});

test('--width-mult / --depth keep the layout and the conditioning widths consistent', () => {
  const sd15 = resolveComponent({ config: 'sd15', widthMult: 0.125, depth: 1 }).config;
  assert.deepEqual(sd15.block_out_channels, [32, 96, 160, 160]);
  assert.equal(sd15.layers_per_block, 1);
  assert.equal(sd15.cross_attention_dim, 128, 'CLIP-L at 2 heads × 64');
  assert.deepEqual(sd15.down_block_types, PRESETS.find((p) => p.name === 'sd15')!.config.down_block_types);

  const sdxl = resolveComponent({ config: 'sdxl', widthMult: 0.25, depth: 2 }).config;
  assert.deepEqual(sdxl.transformer_layers_per_block, [1, 2, 2]);
  assert.equal(sdxl.cross_attention_dim, 192 + 320, 'CLIP-L (3 heads) + CLIP-G (5 heads)');
  assert.equal(sdxl.projection_class_embeddings_input_dim, 320 + 6 * 256);
  for (const [i, c] of (sdxl.block_out_channels as number[]).entries()) assert.equal(c % 32, 0, `level ${i}`);

  const flux = resolveComponent({ config: 'flux-dev', widthMult: 0.125, depth: 2 }).config;
  assert.equal(flux.num_attention_heads, 3);
  assert.equal(flux.attention_head_dim, 128);
  assert.equal(flux.num_layers, 2);
  assert.equal(flux.num_single_layers, 4);
  assert.equal(flux.joint_attention_dim, 512);
  assert.equal(flux.pooled_projection_dim, 128);

  // tiny SD3: T5 must hold the two CLIP widths
  const sd3 = pipelineSpecs('sd3', { widthMult: 0.01, depth: 1 });
  const byFolder = Object.fromEntries(sd3.map((s) => [s.folder, s.spec.config]));
  const clip = (byFolder.text_encoder!.hidden_size as number) + (byFolder.text_encoder_2!.hidden_size as number);
  assert.equal(byFolder.text_encoder_3!.d_model, clip);
  assert.equal(byFolder.transformer!.joint_attention_dim, clip);
  assert.equal(byFolder.transformer!.pooled_projection_dim, (byFolder.text_encoder!.projection_dim as number) + (byFolder.text_encoder_2!.projection_dim as number));

  // every scaled preset still builds
  for (const p of PRESETS) presetLayout(p.name, { widthMult: 0.1, depth: 1 });
  // scaling leaves the preset untouched
  assert.deepEqual(PRESETS.find((p) => p.name === 'sd15')!.config.block_out_channels, [320, 640, 1280, 1280]);
  assert.throws(() => scaleConfig('UNet2DConditionModel', {}, { widthMult: 0 }), ConfigError);
  assert.throws(() => scaleConfig('UNet2DConditionModel', {}, { depth: 1.5 }), ConfigError);
});

test('values: deterministic per (seed, name), realistic scale, no constant tensors', () => {
  const ctx = { className: 'UNet2DConditionModel', config: {} };
  const w = (seed: number, name: string, shape = [64, 32]) => new Float32Array(generate(initFor(name, shape, ctx), shape[0]! * shape[1]!, 'float32', seed, name).buffer);
  assert.deepEqual(w(1, 'a.weight'), w(1, 'a.weight'));
  assert.notDeepEqual(w(1, 'a.weight'), w(2, 'a.weight'));
  assert.notDeepEqual(w(1, 'a.weight'), w(1, 'b.weight'));
  assert.notEqual(hashName('a'), hashName('b'));
  const stats = (a: Float32Array) => {
    let s = 0, s2 = 0;
    for (const v of a) { s += v; s2 += v * v; }
    const mean = s / a.length;
    return { mean, std: Math.sqrt(s2 / a.length - mean * mean) };
  };
  const lin = stats(w(0, 'x.weight', [256, 1024]));
  assert.ok(Math.abs(lin.std - 1 / 32) < 0.002 && Math.abs(lin.mean) < 0.002, JSON.stringify(lin));
  const norm = stats(new Float32Array(generate(initFor('norm1.weight', [4096], ctx), 4096, 'float32', 0, 'norm1.weight').buffer));
  assert.ok(Math.abs(norm.mean - 1) < 0.005 && norm.std > 0.01 && norm.std < 0.03, JSON.stringify(norm));
  const bias = stats(new Float32Array(generate(initFor('proj_out.bias', [4096], ctx), 4096, 'float32', 0, 'proj_out.bias').buffer));
  assert.ok(bias.std > 0.01 && bias.std < 0.03, JSON.stringify(bias));
  // fp16 and bf16 are the float32 values rounded to nearest even (as torch's .half() / .bfloat16())
  for (const name of ['c.weight', 'tiny.bias', 'norm.weight']) {
    const shape = name === 'c.weight' ? [512, 8] : [4096];
    const n = shape.reduce((a, b) => a * b, 1);
    const init = name === 'tiny.bias' ? { kind: 'uniform' as const, mean: 0, std: 1e-4 } : initFor(name, shape, ctx);
    const f32 = new Float32Array(generate(init, n, 'float32', 3, name).buffer);
    const f16 = new Uint16Array(generate(init, n, 'float16', 3, name).buffer);
    const bf16 = new Uint16Array(generate(init, n, 'bfloat16', 3, name).buffer);
    for (let i = 0; i < n; i++) {
      assert.equal(f16[i], f32ToF16(f32[i]!), `${name} f16 ${i}`);
      assert.equal(bf16[i], f32ToBf16(f32[i]!), `${name} bf16 ${i}`);
    }
  }
});
