/**
 * diffusers UNet2DConditionModel → one ONNX graph with Optimum's names: inputs `sample`,
 * `timestep`, `encoder_hidden_states` (+ `text_embeds`/`time_ids` for SDXL, `timestep_cond` for
 * LCM), output `out_sample`. Covers SD 1.x, SD 2.x, SDXL and LCM layouts.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import type { Weights } from './weights.js';
import { Ctx } from './blocks/context.js';
import { timestepEmbedding, timestepProjection } from './blocks/embeddings.js';
import { activation, conv2d, groupNorm } from './blocks/layers.js';
import { resnetBlock2D } from './blocks/resnet.js';
import { downBlock2D, unetMidBlock2DCrossAttn, upBlock2D, type CrossAttnCommon, type ResnetCommon } from './blocks/unet-blocks.js';
import { recordDenoiserBlocks } from './block-patterns.js';

const ACTIVATIONS = ['silu', 'swish', 'mish', 'gelu', 'relu'] as const;
const DOWN_TYPES = ['CrossAttnDownBlock2D', 'DownBlock2D'];
const UP_TYPES = ['CrossAttnUpBlock2D', 'UpBlock2D'];

function unsupported(config: ModelConfig, key: string, value: unknown, supported: string): never {
  throw new ModelFormatError('CONFIG_VALUE', `config key '${key}' = ${JSON.stringify(value)} is not supported (${supported})`, { file: config.file });
}

/** A list of block type names, each one of `allowed` (diffusers strips a `UNetRes` prefix). */
function blockTypes(config: ModelConfig, key: string, dflt: string[], allowed: string[]): string[] {
  const types = config.list<unknown>(key, dflt);
  return types.map((t) => {
    const name = typeof t === 'string' && t.startsWith('UNetRes') ? t.slice(7) : t;
    if (typeof name !== 'string' || !allowed.includes(name)) unsupported(config, key, types, `supported block types: ${allowed.join(', ')}`);
    return name;
  });
}

/** transformer_layers_per_block: a number, one per level, or (asymmetric UNets) one list per level. */
function layersPerLevel(config: ModelConfig, key: string, n: number, dflt: number | null): (number | number[])[] | null {
  const v = config.raw[key] ?? dflt;
  if (v === null) return null;
  if (typeof v === 'number' && Number.isInteger(v)) return Array(n).fill(v);
  const isInt = (x: unknown) => typeof x === 'number' && Number.isInteger(x);
  if (Array.isArray(v) && v.length === n && v.every((x) => isInt(x) || (Array.isArray(x) && x.every(isInt)))) return v as (number | number[])[];
  unsupported(config, key, v, `expected an integer or a list of ${n} entries`);
}

interface UNetSpec {
  inC: number;
  outC: number;
  channels: number[];
  down: string[];
  up: string[];
  mid: 'UNetMidBlock2DCrossAttn' | 'UNetMidBlock2D' | null;
  layers: number[];
  heads: number[];
  crossDim: number;
  tlDown: (number | number[])[];
  tlUp: (number | number[])[];
  groups: number;
  eps: number;
  act: string;
  linearProjection: boolean;
  downsamplePadding: number;
  midScale: number;
  centerInput: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  timeEmbedDim: number;
  timeCondDim: number | null;
  timestepPostAct: string | null;
  timeEmbedAct: string | null;
  textTime: { addTimeDim: number; projDim: number } | null;
  convInKernel: number;
  convOutKernel: number;
}

function readConfig(config: ModelConfig): UNetSpec {
  // options whose other values select modules we do not build
  config.oneOf('resnet_time_scale_shift', ['default'], 'default');
  config.oneOf('time_embedding_type', ['positional'], 'positional');
  config.oneOf('attention_type', ['default'], 'default');
  config.expect('class_embed_type', []);
  config.expect('num_class_embeds', []);
  config.expect('class_embeddings_concat', [false]);
  config.expect('encoder_hid_dim', []);
  config.expect('encoder_hid_dim_type', []);
  config.expect('dual_cross_attention', [false]);
  config.expect('cross_attention_norm', []);
  config.expect('mid_block_only_cross_attention', [false]);
  config.expect('resnet_skip_time_act', [false]);
  config.expect('resnet_out_scale_factor', [1]);
  // diffusers itself refuses it (the attention_head_dim naming issue)
  config.expect('num_attention_heads', []);

  const channels = config.list<number>('block_out_channels', [320, 640, 1280, 1280]);
  const n = channels.length;
  if (n === 0 || !channels.every((x) => Number.isInteger(x) && x > 0)) unsupported(config, 'block_out_channels', channels, 'expected positive integers');
  const down = blockTypes(config, 'down_block_types', ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'], DOWN_TYPES);
  const up = blockTypes(config, 'up_block_types', ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'], UP_TYPES);
  if (down.length !== n) unsupported(config, 'down_block_types', down, `expected ${n} entries, one per block_out_channels`);
  if (up.length !== n) unsupported(config, 'up_block_types', up, `expected ${n} entries, one per block_out_channels`);
  const oca = config.raw.only_cross_attention;
  if (oca !== undefined && oca !== null && oca !== false && !(Array.isArray(oca) && oca.every((x) => x === false))) {
    unsupported(config, 'only_cross_attention', oca, 'supported: false');
  }
  const mid = config.oneOf('mid_block_type', ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D', null] as const, 'UNetMidBlock2DCrossAttn');

  // norm_num_groups null would drop conv_norm_out: another graph
  if (config.raw.norm_num_groups === null) unsupported(config, 'norm_num_groups', null, 'expected an integer');
  const groups = config.int('norm_num_groups', 32);
  const eps = config.num('norm_eps', 1e-5);
  const act = config.oneOf('act_fn', ACTIVATIONS, 'silu');
  const layers = config.perLevel('layers_per_block', n, 2);
  // num_attention_heads defaults to attention_head_dim: in diffusers' configs it is the head count
  const heads = config.perLevel('attention_head_dim', n, 8);
  const cross = config.perLevel('cross_attention_dim', n, 1280);
  if (!cross.every((d) => d === cross[0])) unsupported(config, 'cross_attention_dim', config.raw.cross_attention_dim, 'one encoder_hidden_states width for all levels');
  const tl = layersPerLevel(config, 'transformer_layers_per_block', n, 1)!;
  const tlReverse = layersPerLevel(config, 'reverse_transformer_layers_per_block', n, null);
  if (tl.some(Array.isArray) && !tlReverse) unsupported(config, 'reverse_transformer_layers_per_block', null, 'required when transformer_layers_per_block has lists');
  for (let i = 0; i < n; i++) {
    if (channels[i]! % groups !== 0) unsupported(config, 'norm_num_groups', groups, `block_out_channels[${i}] = ${channels[i]} must be a multiple of it`);
    const hasAttention = down[i] === 'CrossAttnDownBlock2D' || up[n - 1 - i] === 'CrossAttnUpBlock2D' || (i === n - 1 && mid === 'UNetMidBlock2DCrossAttn');
    if (hasAttention && channels[i]! % heads[i]! !== 0) {
      unsupported(config, 'attention_head_dim', config.raw.attention_head_dim, `block_out_channels[${i}] = ${channels[i]} must be a multiple of the head count`);
    }
  }

  const addType = config.oneOf('addition_embed_type', [null, 'text_time'] as const, null);
  const textTime = addType === 'text_time' ? { addTimeDim: config.int('addition_time_embed_dim'), projDim: config.int('projection_class_embeddings_input_dim') } : null;
  const convInKernel = config.int('conv_in_kernel', 3);
  const convOutKernel = config.int('conv_out_kernel', 3);
  if (convInKernel % 2 !== 1) unsupported(config, 'conv_in_kernel', convInKernel, 'expected an odd kernel size');
  if (convOutKernel % 2 !== 1) unsupported(config, 'conv_out_kernel', convOutKernel, 'expected an odd kernel size');
  const tembDim = config.raw.time_embedding_dim;
  return {
    inC: config.int('in_channels', 4),
    outC: config.int('out_channels', 4),
    channels,
    down,
    up,
    mid,
    layers,
    heads,
    crossDim: cross[0]!,
    tlDown: tl,
    tlUp: tlReverse ?? [...tl].reverse(),
    groups,
    eps,
    act,
    linearProjection: config.bool('use_linear_projection', false),
    downsamplePadding: config.int('downsample_padding', 1),
    midScale: config.num('mid_block_scale_factor', 1),
    centerInput: config.bool('center_input_sample', false),
    flipSinToCos: config.bool('flip_sin_to_cos', true),
    freqShift: config.num('freq_shift', 0),
    timeEmbedDim: tembDim === null || tembDim === undefined ? channels[0]! * 4 : config.int('time_embedding_dim'),
    timeCondDim: config.has('time_cond_proj_dim') ? config.int('time_cond_proj_dim') : null,
    timestepPostAct: config.oneOf('timestep_post_act', [null, ...ACTIVATIONS], null),
    timeEmbedAct: config.oneOf('time_embedding_act_fn', [null, ...ACTIVATIONS], null),
    textTime,
    convInKernel,
    convOutKernel,
  };
}

const asList = (x: number | number[]) => (Array.isArray(x) ? x : [x]);

export const buildUNet2DConditionModel: ArchitectureBuilder = (config: ModelConfig, weights: Weights) => {
  const s = readConfig(config);
  const n = s.channels.length;
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);

  let sample = b.input('sample', 'float32', ['batch_size', s.inC, 'height', 'width']);
  // [1] or [B]: diffusers broadcasts the timestep to the batch
  const timestep = b.input('timestep', 'float32', ['steps']);
  const context = b.input('encoder_hidden_states', 'float32', ['batch_size', 'sequence_length', s.crossDim]);
  const textEmbeds = s.textTime ? b.input('text_embeds', 'float32', ['batch_size', 'text_embeds_dim']) : undefined;
  const timeIds = s.textTime ? b.input('time_ids', 'float32', ['batch_size', 'time_ids_dim']) : undefined;
  const timestepCond = s.timeCondDim ? b.input('timestep_cond', 'float32', ['batch_size', s.timeCondDim]) : undefined;

  if (s.centerInput) sample = b.sub(b.mul(sample, b.constF32(2)), b.constF32(1));

  // 1. time embedding
  const t = b.op('Expand', [timestep, b.shape(sample, 0, 1)]);
  const tProj = c.scope('time_proj', () => timestepProjection(c, t, s.channels[0]!, s.flipSinToCos, s.freqShift));
  let emb = timestepEmbedding(c, 'time_embedding', tProj, s.channels[0]!, s.timeEmbedDim, s.act, {
    cond: timestepCond,
    condDim: s.timeCondDim ?? undefined,
    postAct: s.timestepPostAct ?? undefined,
  });
  if (s.textTime && textEmbeds && timeIds) {
    const { addTimeDim, projDim } = s.textTime;
    // add_time_proj(time_ids.flatten()).reshape(B, -1)
    const timeEmbeds = c.scope('add_time_proj', () => {
      const flat = timestepProjection(c, b.reshape(timeIds, [-1]), addTimeDim, s.flipSinToCos, s.freqShift);
      return b.op('Reshape', [flat, b.concat([b.shape(timeIds, 0, 1), b.constI64([-1])], 0)]);
    });
    const addEmbeds = b.concat([textEmbeds, timeEmbeds], -1);
    emb = b.add(emb, timestepEmbedding(c, 'add_embedding', addEmbeds, projDim, s.timeEmbedDim, 'silu'));
  }
  if (s.timeEmbedAct) emb = c.scope('time_embed_act', () => activation(c, s.timeEmbedAct!, emb));
  // every resnet applies its non-linearity to this same embedding
  const tembAct = activation(c, s.act, emb);
  const common: ResnetCommon = { groups: s.groups, eps: s.eps, act: s.act, tembAct, tembC: s.timeEmbedDim };
  const attn = (heads: number, transformerLayers: number | number[]): CrossAttnCommon => ({
    context,
    crossDim: s.crossDim,
    heads,
    transformerLayers: asList(transformerLayers),
    linearProjection: s.linearProjection,
  });

  // 2. pre-process
  let h = conv2d(c, 'conv_in', sample, s.inC, s.channels[0]!, { kernel: s.convInKernel });

  // 3. down
  const skips: Value[] = [h];
  for (let i = 0; i < n; i++) {
    const o = { ...common, inC: i === 0 ? s.channels[0]! : s.channels[i - 1]!, outC: s.channels[i]!, layers: s.layers[i]!, addDownsample: i < n - 1, downsamplePadding: s.downsamplePadding };
    const r = downBlock2D(c, `down_blocks.${i}`, h, o, s.down[i] === 'CrossAttnDownBlock2D' ? attn(s.heads[i]!, s.tlDown[i]!) : undefined);
    h = r.out;
    skips.push(...r.skips);
  }

  // 4. mid
  const top = s.channels[n - 1]!;
  if (s.mid === 'UNetMidBlock2DCrossAttn') {
    h = unetMidBlock2DCrossAttn(c, 'mid_block', h, { ...common, channels: top, outputScale: s.midScale }, attn(s.heads[n - 1]!, asList(s.tlDown[n - 1]!)[0]!));
  } else if (s.mid === 'UNetMidBlock2D') {
    h = c.scope('mid_block', () => resnetBlock2D(c, 'resnets.0', h, { ...common, inC: top, outC: top, outputScale: s.midScale }));
  }

  // 5. up
  const rc = [...s.channels].reverse();
  const rHeads = [...s.heads].reverse();
  const rLayers = [...s.layers].reverse();
  let prev = rc[0]!;
  for (let i = 0; i < n; i++) {
    const isFinal = i === n - 1;
    const layers = rLayers[i]! + 1;
    const o = {
      ...common,
      inC: rc[Math.min(i + 1, n - 1)]!,
      prevC: prev,
      outC: rc[i]!,
      layers,
      addUpsample: !isFinal,
      // after this block pops its skips, the last one left has the size to upsample to
      upsampleTo: isFinal ? undefined : skips[skips.length - 1 - layers],
    };
    h = upBlock2D(c, `up_blocks.${i}`, h, skips, o, s.up[i] === 'CrossAttnUpBlock2D' ? attn(rHeads[i]!, s.tlUp[i]!) : undefined);
    prev = rc[i]!;
  }

  // 6. post-process
  h = groupNorm(c, 'conv_norm_out', h, s.groups, s.channels[0]!, s.eps);
  h = c.scope('conv_act', () => activation(c, s.act, h));
  h = conv2d(c, 'conv_out', h, s.channels[0]!, s.outC, { kernel: s.convOutKernel });
  b.output(h, 'out_sample', 'float32', ['batch_size', s.outC, 'height', 'width']);

  const model = b.model({ '': 17 });
  model.metadataProps.set('diffusers.class_name', 'UNet2DConditionModel');
  model.metadataProps.set('in_channels', String(s.inC));
  model.metadataProps.set('out_channels', String(s.outC));
  if (config.has('sample_size')) model.metadataProps.set('sample_size', JSON.stringify(config.raw.sample_size));
  model.metadataProps.set('cross_attention_dim', String(s.crossDim));
  if (s.textTime) model.metadataProps.set('addition_embed_type', 'text_time');
  if (s.timeCondDim) model.metadataProps.set('time_cond_proj_dim', String(s.timeCondDim));
  recordDenoiserBlocks(model);
  return { model };
};
