/**
 * transformers CLIPTextModel / CLIPTextModelWithProjection (the Stable Diffusion, SDXL, SD3 and
 * Flux text encoders). The graph is scoped under `text_model` (and `text_projection`) so that
 * initializers carry the checkpoint's names.
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { InMemoryTensor } from '../core/tensor.js';
import { Ctx } from './blocks/context.js';
import { activation, attention, layerNorm, linear } from './blocks/layers.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import type { Weights } from './weights.js';

export const CLIP_ACTIVATION_NAMES = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;
export const CLIP_TEXT_CLASSES = ['CLIPTextModel', 'CLIPTextModelWithProjection'] as const;
const CLIP_ACTIVATIONS = CLIP_ACTIVATION_NAMES;
// torch.finfo(float32).min: what transformers fills the causal mask with
const F32_MIN = -3.4028234663852886e38;

export interface ClipTextOptions {
  className: (typeof CLIP_TEXT_CLASSES)[number];
  vocab: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  maxPositions: number;
  act: string;
  eps: number;
  eosTokenId: number;
  projectionDim: number;
}

/** Reads and checks the CLIPTextConfig keys the graph depends on. */
export function clipTextOptions(config: ModelConfig): ClipTextOptions {
  const className = config.className;
  if (!(CLIP_TEXT_CLASSES as readonly string[]).includes(className)) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'architectures' = ${JSON.stringify(className)} is not supported (supported: ${CLIP_TEXT_CLASSES.join(', ')})`, { file: config.file });
  }
  // a full CLIPModel config nests the text tower under text_config
  config.expect('model_type', ['clip_text_model']);
  const hidden = config.int('hidden_size', 512);
  const heads = config.int('num_attention_heads', 8);
  if (heads <= 0 || hidden % heads !== 0) {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'num_attention_heads' = ${heads} does not divide hidden_size ${hidden}`, { file: config.file });
  }
  return {
    className: className as ClipTextOptions['className'],
    vocab: config.int('vocab_size', 49408),
    hidden,
    intermediate: config.int('intermediate_size', 2048),
    layers: config.int('num_hidden_layers', 12),
    heads,
    maxPositions: config.int('max_position_embeddings', 77),
    act: config.oneOf('hidden_act', CLIP_ACTIVATIONS, 'quick_gelu'),
    eps: config.num('layer_norm_eps', 1e-5),
    eosTokenId: config.int('eos_token_id', 49407),
    projectionDim: config.int('projection_dim', 512),
  };
}

/**
 * Inputs `input_ids` [batch_size, sequence_length] int64. Outputs `last_hidden_state`,
 * `pooler_output`, `text_embeds` (WithProjection only) and `hidden_states.{0..layers}`
 * (0 = embeddings, i = output of layer i before the final LayerNorm).
 */
export const buildCLIPTextModel: ArchitectureBuilder = (config: ModelConfig, weights: Weights) => {
  const o = clipTextOptions(config);
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);
  const D = o.hidden;
  const headDim = D / o.heads;
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const hsShape = ['batch_size', 'sequence_length', D];

  const { last, pooled } = c.scope('text_model', () => {
    const emb = c.scope('embeddings', () => {
      const tok = c.scope('token_embedding', () => b.op('Gather', [c.param('weight', [o.vocab, D]), ids], { axis: 0 }));
      // position_ids = arange(S): the first S rows of the table
      const pos = c.scope('position_embedding', () => {
        const seq = b.shape(ids, 1, 2);
        return b.op('Slice', [c.param('weight', [o.maxPositions, D]), b.constI64([0]), seq, b.constI64([0])]);
      });
      return b.add(tok, pos);
    });
    b.output(emb, 'hidden_states.0', 'float32', hsShape);

    const mask = causalMask(c, ids);
    let h = emb;
    c.scope('encoder', () => {
      for (let i = 0; i < o.layers; i++) {
        h = c.scope(`layers.${i}`, () => clipEncoderLayer(c, h, o, headDim, mask));
        b.output(h, `hidden_states.${i + 1}`, 'float32', hsShape);
      }
    });
    const last = layerNorm(c, 'final_layer_norm', h, D, o.eps);
    return { last, pooled: pool(c, last, ids, o.eosTokenId) };
  });

  b.output(last, 'last_hidden_state', 'float32', hsShape);
  // WithProjection keeps pooler_output too: it is the projection's input and costs nothing.
  b.output(pooled, 'pooler_output', 'float32', ['batch_size', D]);
  if (o.className === 'CLIPTextModelWithProjection') {
    const embeds = linear(c, 'text_projection', pooled, D, o.projectionDim, false);
    b.output(embeds, 'text_embeds', 'float32', ['batch_size', o.projectionDim]);
  }
  const m = b.model({ '': 17 });
  m.metadataProps.set('diffusers.class_name', o.className);
  m.metadataProps.set('transformers.model_type', 'clip_text_model');
  m.metadataProps.set('num_hidden_layers', String(o.layers));
  return { model: m };
};

/** [1, 1, S, S] additive mask: 0 on and below the diagonal, float32 min above (transformers). */
function causalMask(c: Ctx, ids: Value): Value {
  const b = c.b;
  const s = b.shape(ids, 1, 2);
  const full = b.op('ConstantOfShape', [b.concat([s, s], 0)], { value: new InMemoryTensor('float32', [1], Float32Array.from([F32_MIN])) });
  const upper = b.op('Trilu', [full, b.constI64(1)], { upper: 1 });
  return b.unsqueeze(upper, [0, 1]);
}

/** One CLIP encoder layer (text and vision towers alike; the text tower passes its causal mask). */
export function clipEncoderLayer(c: Ctx, x: Value, o: Pick<ClipTextOptions, 'hidden' | 'heads' | 'intermediate' | 'act' | 'eps'>, headDim: number, mask?: Value): Value {
  const b = c.b;
  const D = o.hidden;
  const n1 = layerNorm(c, 'layer_norm1', x, D, o.eps);
  const attn = c.scope('self_attn', () => {
    const q = linear(c, 'q_proj', n1, D, D);
    const k = linear(c, 'k_proj', n1, D, D);
    const v = linear(c, 'v_proj', n1, D, D);
    return linear(c, 'out_proj', attention(c, q, k, v, o.heads, headDim, { bias: mask }), D, D);
  });
  const h = b.add(x, attn);
  const n2 = layerNorm(c, 'layer_norm2', h, D, o.eps);
  const mlp = c.scope('mlp', () => linear(c, 'fc2', activation(c, o.act, linear(c, 'fc1', n2, D, o.intermediate)), o.intermediate, D));
  return b.add(h, mlp);
}

/**
 * The hidden state at the end-of-text token, as transformers picks it: with the legacy
 * `eos_token_id == 2` the position of the largest id, else the first position equal to
 * `eos_token_id` (position 0 when there is none). Both on int32 ids, as transformers casts.
 */
function pool(c: Ctx, last: Value, ids: Value, eos: number): Value {
  const b = c.b;
  const ids32 = b.cast(ids, 6);
  const keyed = eos === 2
    ? ids32
    : b.cast(b.op('Equal', [ids32, b.constant(new InMemoryTensor('int32', [], Int32Array.from([eos])))]), 6);
  const index = b.op('ArgMax', [keyed], { axis: -1, keepdims: 1, select_last_index: 0 });
  return b.op('GatherND', [last, index], { batch_dims: 1 });
}
