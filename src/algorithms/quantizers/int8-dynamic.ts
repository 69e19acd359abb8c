/**
 * int8Dynamic (Pruna's torchao `int8dq`): weights int8 per output channel, activations quantized
 * at run time. A MatMul with a constant [K, N] weight (or a Gemm that is one) becomes ONNX
 * Runtime's `DynamicQuantizeMatMul`, with a following bias Add (the Gemm's C) folded in:
 *
 *     x ─► MatMul(W) ─► Add(b) ─► y    ⇒    x ─► DynamicQuantizeMatMul(Wq int8, scale[N], –, b) ─► y
 */
import { z } from 'zod';
import type { Model, Node } from '../../ir/graph.js';
import { profileRuns } from '../../runtime/profiles.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { quantizeConvsDynamic } from './conv-integer.js';
import { quantizePerChannelInt8 } from './int8.js';
import { replaceLinears } from './linear.js';
import { targetFields, targetLinears, targetNodes } from './targets.js';

/** Rewrites the selected MatMuls; returns how many were quantized. */
export function quantizeMatMulsDynamic(model: Model, nodes: readonly Node[]): number {
  return replaceLinears(model, nodes, 'DynamicQuantizeMatMul', ({ node, weight, bias, init }, dq) => {
    const { q, scale } = quantizePerChannelInt8(weight, 1);
    dq.inputs.push(node.inputs[0]!, init('quantized', q), init('scale', scale), null, bias ?? null);
  });
}

export const int8Dynamic = defineAlgorithm({
  name: 'int8Dynamic',
  kind: 'quantizer',
  description: 'int8 weights per output channel, activations quantized at run time (DynamicQuantizeMatMul)',
  schema: z.object({
    conv: z.enum(['none', 'convInteger']).default('none')
      .describe('convolutions too, through DynamicQuantizeLinear + ConvInteger (measured 4× slower than float Conv on AMD EPYC, 1.5× faster on Zen 4: measure first)'),
    ...targetFields,
  }),
  supports: (t) => (profileRuns(t.provider ?? 'cpu', 'com.microsoft.DynamicQuantizeMatMul') ? supported : unsupported(`${t.provider} has no DynamicQuantizeMatMul kernel (int8WeightOnly runs there)`)),
  apply(params) {
    return {
      transform(component, model) {
        const nodes = targetNodes(model.graph, component, params);
        quantizeMatMulsDynamic(model, nodes);
        if (params.conv === 'convInteger') quantizeConvsDynamic(model, nodes);
        return model;
      },
      touches: (component, model) => targetLinears(model.graph, component, params),
    };
  },
});
