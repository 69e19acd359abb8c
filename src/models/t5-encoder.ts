/**
 * transformers T5EncoderModel (the Flux / SD3 `text_encoder_2`/`_3`), without attention mask:
 * every position attends to every position, as the pipelines call it. Scoped as the checkpoint
 * (`encoder.block.0.layer.0.SelfAttention.q.weight` …).
 */
import { ModelFormatError } from '../errors.js';
import { GraphBuilder } from '../ir/builder.js';
import type { Value } from '../ir/graph.js';
import { Ctx } from './blocks/context.js';
import { activation, attention, linear, rmsNorm } from './blocks/layers.js';
import { t5PositionBias } from './blocks/t5-relative-position.js';
import type { ModelConfig } from './config.js';
import type { ArchitectureBuilder } from './registry.js';
import type { Weights } from './weights.js';

const T5_ACTIVATIONS = ['relu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh', 'silu'] as const;

export interface T5EncoderOptions {
  vocab: number;
  dModel: number;
  dKv: number;
  dFf: number;
  layers: number;
  heads: number;
  numBuckets: number;
  maxDistance: number;
  eps: number;
  act: string;
  gated: boolean;
}

/** Reads and checks the T5Config keys the encoder graph depends on. */
export function t5EncoderOptions(config: ModelConfig): T5EncoderOptions {
  if (config.className !== 'T5EncoderModel') {
    throw new ModelFormatError('CONFIG_VALUE', `config key 'architectures' = ${JSON.stringify(config.className)} is not supported (supported: T5EncoderModel)`, { file: config.file });
  }
  // umt5 has a relative bias per layer, longt5 other attention: not this graph
  config.expect('model_type', ['t5']);
  // T5Config derives dense_act_fn / is_gated_act from feed_forward_proj ('gated-gelu' means
  // gelu_new); values saved in config.json override the derived ones, as kwargs do there.
  const proj = config.oneOf('feed_forward_proj', ['relu', 'gated-gelu', 'gelu', 'gated-relu', 'gated-silu', 'silu'], 'relu');
  const parts = proj.split('-');
  const derivedAct = proj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1]!;
  return {
    vocab: config.int('vocab_size', 32128),
    dModel: config.int('d_model', 512),
    dKv: config.int('d_kv', 64),
    dFf: config.int('d_ff', 2048),
    layers: config.int('num_layers', 6),
    heads: config.int('num_heads', 8),
    numBuckets: config.int('relative_attention_num_buckets', 32),
    maxDistance: config.int('relative_attention_max_distance', 128),
    eps: config.num('layer_norm_epsilon', 1e-6),
    act: config.oneOf('dense_act_fn', T5_ACTIVATIONS, derivedAct as (typeof T5_ACTIVATIONS)[number]),
    gated: config.bool('is_gated_act', parts[0] === 'gated'),
  };
}

/** Input `input_ids` [batch_size, sequence_length] int64; output `last_hidden_state`. */
export const buildT5EncoderModel: ArchitectureBuilder = (config: ModelConfig, weights: Weights) => {
  const o = t5EncoderOptions(config);
  const b = new GraphBuilder('main_graph');
  const c = new Ctx(b, weights);
  const D = o.dModel;
  const ids = b.input('input_ids', 'int64', ['batch_size', 'sequence_length']);

  // encoder.embed_tokens is tied to shared: checkpoints keep either name (or both)
  const table = c.hasParam('shared.weight')
    ? c.scope('shared', () => c.param('weight', [o.vocab, D]))
    : c.hasParam('encoder.embed_tokens.weight')
      ? c.scope('encoder', () => c.scope('embed_tokens', () => c.param('weight', [o.vocab, D])))
      : (() => { throw new ModelFormatError('TENSOR_MISSING', "weight missing from the checkpoint (nor is 'encoder.embed_tokens.weight' there)", { file: weights.checkpoint.source, tensor: 'shared.weight' }); })();

  const last = c.scope('encoder', () => {
    let h = c.scope('embed_tokens', () => b.op('Gather', [table, ids], { axis: 0 }));
    let bias: Value | undefined;
    for (let i = 0; i < o.layers; i++) {
      h = c.scope(`block.${i}`, () => {
        const x = c.scope('layer.0', () => {
          const n = rmsNorm(c, 'layer_norm', h, D, o.eps);
          const attn = c.scope('SelfAttention', () => {
            // only block 0 owns the relative bias; the other blocks reuse its output
            bias ??= t5PositionBias(c, ids, o.numBuckets, o.maxDistance, o.heads, config.file);
            return selfAttention(c, n, o, bias);
          });
          return b.add(h, attn);
        });
        return c.scope('layer.1', () => {
          const n = rmsNorm(c, 'layer_norm', x, D, o.eps);
          return b.add(x, c.scope('DenseReluDense', () => feedForward(c, n, o)));
        });
      });
    }
    return rmsNorm(c, 'final_layer_norm', h, D, o.eps);
  });

  b.output(last, 'last_hidden_state', 'float32', ['batch_size', 'sequence_length', D]);
  const m = b.model({ '': 17 });
  m.metadataProps.set('diffusers.class_name', 'T5EncoderModel');
  m.metadataProps.set('transformers.model_type', 't5');
  return { model: m };
};

/** T5Attention: no bias on q/k/v/o and no 1/√d scaling of the scores (folded into the init). */
function selfAttention(c: Ctx, x: Value, o: T5EncoderOptions, bias: Value): Value {
  const inner = o.heads * o.dKv;
  const q = linear(c, 'q', x, o.dModel, inner, false);
  const k = linear(c, 'k', x, o.dModel, inner, false);
  const v = linear(c, 'v', x, o.dModel, inner, false);
  return linear(c, 'o', attention(c, q, k, v, o.heads, o.dKv, { scale: 1, bias }), inner, o.dModel, false);
}

/** T5DenseGatedActDense (act(wi_0)·wi_1 → wo) or T5DenseActDense (act(wi) → wo). */
function feedForward(c: Ctx, x: Value, o: T5EncoderOptions): Value {
  const h = o.gated
    ? c.b.mul(activation(c, o.act, linear(c, 'wi_0', x, o.dModel, o.dFf, false)), linear(c, 'wi_1', x, o.dModel, o.dFf, false))
    : activation(c, o.act, linear(c, 'wi', x, o.dModel, o.dFf, false));
  return linear(c, 'wo', h, o.dFf, o.dModel, false);
}
