/**
 * diffusers AutoencoderKL → two ONNX graphs with Optimum's names:
 *   encoder: `sample` [B, 3, H, W] → `latent_parameters` [B, 2C, h, w] (mean ‖ logvar clamped to
 *            [-30, 20], as DiagonalGaussianDistribution holds them)
 *   decoder: `latent_sample` [B, C, h, w] → `sample`
 * No scaling is applied inside: `scaling_factor`/`shift_factor` go to the metadata for pipelines.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Model } from '../ir/graph.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import type { Weights } from './weights.js';
import { Ctx } from './blocks/context.js';
import { activation, conv2d, groupNorm } from './blocks/layers.js';
import { downEncoderBlock2D, unetMidBlock2D, upDecoderBlock2D } from './blocks/unet-blocks.js';

const EPS = 1e-6; // the Encoder/Decoder hard-code it

interface VaeSpec {
  inC: number;
  outC: number;
  latentC: number;
  channels: number[];
  layers: number;
  groups: number;
  act: string;
  midAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
}

function checkTypes(config: ModelConfig, key: string, n: number, type: string): void {
  const v = config.list<unknown>(key, [type]);
  if (v.length !== n || !v.every((t) => t === type)) {
    throw new ModelFormatError('CONFIG_VALUE', `config key '${key}' = ${JSON.stringify(v)} is not supported (supported: ${n} × "${type}")`, { file: config.file });
  }
}

/** `use_quant_conv`-style switch; older configs lack it, then the weights decide. */
function convSwitch(config: ModelConfig, weights: Weights, key: string, weight: string): boolean {
  return config.has(key) ? config.bool(key) : weights.has(weight);
}

function readConfig(config: ModelConfig, weights: Weights): VaeSpec {
  const channels = config.list<number>('block_out_channels', [64]);
  if (channels.length === 0 || !channels.every((x) => Number.isInteger(x) && x > 0)) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'block_out_channels' = ${JSON.stringify(channels)} is not supported (expected positive integers)`, { file: config.file });
  }
  checkTypes(config, 'down_block_types', channels.length, 'DownEncoderBlock2D');
  checkTypes(config, 'up_block_types', channels.length, 'UpDecoderBlock2D');
  const groups = config.int('norm_num_groups', 32);
  for (const ch of channels) {
    if (ch % groups !== 0) throw new ModelFormatError('CONFIG_VALUE', `config key 'norm_num_groups' = ${groups} is not supported (block_out_channels ${ch} must be a multiple of it)`, { file: config.file });
  }
  return {
    inC: config.int('in_channels', 3),
    outC: config.int('out_channels', 3),
    latentC: config.int('latent_channels', 4),
    channels,
    layers: config.int('layers_per_block', 1),
    groups,
    act: config.oneOf('act_fn', ['silu', 'swish', 'mish', 'gelu', 'relu'] as const, 'silu'),
    midAttention: config.bool('mid_block_add_attention', true),
    quantConv: convSwitch(config, weights, 'use_quant_conv', 'quant_conv.weight'),
    postQuantConv: convSwitch(config, weights, 'use_post_quant_conv', 'post_quant_conv.weight'),
  };
}

function setMetadata(model: Model, config: ModelConfig, s: VaeSpec, component: string): void {
  model.metadataProps.set('diffusers.class_name', 'AutoencoderKL');
  model.metadataProps.set('component', component);
  model.metadataProps.set('latent_channels', String(s.latentC));
  model.metadataProps.set('scaling_factor', String(config.num('scaling_factor', 0.18215)));
  if (config.has('shift_factor')) model.metadataProps.set('shift_factor', String(config.num('shift_factor')));
  for (const key of ['latents_mean', 'latents_std']) if (config.has(key)) model.metadataProps.set(key, JSON.stringify(config.list<number>(key)));
  // diffusers runs such a VAE in float32 whatever the pipeline's dtype (it overflows in float16)
  if (config.has('force_upcast')) model.metadataProps.set('force_upcast', String(config.bool('force_upcast')));
  model.metadataProps.set('downsample_factor', String(2 ** (s.channels.length - 1)));
}

function buildEncoder(config: ModelConfig, weights: Weights, s: VaeSpec): Model {
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);
  const x = b.input('sample', 'float32', ['batch_size', s.inC, 'height', 'width']);
  const n = s.channels.length;
  const top = s.channels[n - 1]!;
  let h = c.scope('encoder', () => {
    let h = conv2d(c, 'conv_in', x, s.inC, s.channels[0]!);
    for (let i = 0; i < n; i++) {
      h = downEncoderBlock2D(c, `down_blocks.${i}`, h, {
        inC: i === 0 ? s.channels[0]! : s.channels[i - 1]!,
        outC: s.channels[i]!,
        layers: s.layers,
        addDownsample: i < n - 1,
        downsamplePadding: 0,
        groups: s.groups,
        eps: EPS,
        act: s.act,
      });
    }
    h = unetMidBlock2D(c, 'mid_block', h, { channels: top, groups: s.groups, eps: EPS, act: s.act, addAttention: s.midAttention, attentionHeadDim: top });
    h = groupNorm(c, 'conv_norm_out', h, s.groups, top, EPS);
    h = c.scope('conv_act', () => activation(c, 'silu', h));
    return conv2d(c, 'conv_out', h, top, 2 * s.latentC);
  });
  if (s.quantConv) h = conv2d(c, 'quant_conv', h, 2 * s.latentC, 2 * s.latentC, { kernel: 1, padding: 0 });
  // DiagonalGaussianDistribution: mean, clamp(logvar, -30, 20)
  const params = c.scope('posterior', () => {
    const [mean, logvar] = b.split(h, [s.latentC, s.latentC], 1) as [typeof h, typeof h];
    const clamped = b.op('Clip', [logvar, b.constF32(-30), b.constF32(20)]);
    return b.concat([mean, clamped], 1);
  });
  b.output(params, 'latent_parameters', 'float32', ['batch_size', 2 * s.latentC, 'latent_height', 'latent_width']);
  const model = b.model({ '': 17 });
  setMetadata(model, config, s, 'vae_encoder');
  return model;
}

function buildDecoder(config: ModelConfig, weights: Weights, s: VaeSpec): Model {
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);
  let z = b.input('latent_sample', 'float32', ['batch_size', s.latentC, 'latent_height', 'latent_width']);
  if (s.postQuantConv) z = conv2d(c, 'post_quant_conv', z, s.latentC, s.latentC, { kernel: 1, padding: 0 });
  const n = s.channels.length;
  const rc = [...s.channels].reverse();
  const out = c.scope('decoder', () => {
    let h = conv2d(c, 'conv_in', z, s.latentC, rc[0]!);
    h = unetMidBlock2D(c, 'mid_block', h, { channels: rc[0]!, groups: s.groups, eps: EPS, act: s.act, addAttention: s.midAttention, attentionHeadDim: rc[0]! });
    let prev = rc[0]!;
    for (let i = 0; i < n; i++) {
      h = upDecoderBlock2D(c, `up_blocks.${i}`, h, { inC: prev, outC: rc[i]!, layers: s.layers + 1, addUpsample: i < n - 1, groups: s.groups, eps: EPS, act: s.act });
      prev = rc[i]!;
    }
    h = groupNorm(c, 'conv_norm_out', h, s.groups, s.channels[0]!, EPS);
    h = c.scope('conv_act', () => activation(c, 'silu', h));
    return conv2d(c, 'conv_out', h, s.channels[0]!, s.outC);
  });
  b.output(out, 'sample', 'float32', ['batch_size', s.outC, 'height', 'width']);
  const model = b.model({ '': 17 });
  setMetadata(model, config, s, 'vae_decoder');
  return model;
}

export const buildAutoencoderKL: ArchitectureBuilder = (config: ModelConfig, weights: Weights) => {
  const s = readConfig(config, weights);
  return { encoder: buildEncoder(config, weights, s), decoder: buildDecoder(config, weights, s) };
};
