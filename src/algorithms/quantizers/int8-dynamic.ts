/**
 * int8Dynamic (Pruna's torchao `int8dq`): weights int8 per output channel, activations quantized
 * at run time. A MatMul with a constant [K, N] weight becomes ONNX Runtime's
 * `DynamicQuantizeMatMul`, with a following bias Add folded in:
 *
 *     x ─► MatMul(W) ─► Add(b) ─► y    ⇒    x ─► DynamicQuantizeMatMul(Wq int8, scale[N], –, b) ─► y
 */
import { z } from 'zod';
import type { Tensor } from '../../core/tensor.js';
import { Node, type Model, type Value } from '../../ir/graph.js';
import { profileRuns } from '../../runtime/profiles.js';
import { defineAlgorithm, supported, unsupported } from '../algorithm.js';
import { quantizeConvsDynamic } from './conv-integer.js';
import { lazyQuantizeColumnsInt8 } from './int8.js';
import { biasAdd, constWeight2D, replaceLinear } from './linear.js';
import { targetFields, targetLinears, targetNodes } from './targets.js';

export const MS_DOMAIN = 'com.microsoft';

/** Rewrites the selected MatMuls; returns how many were quantized. */
export function quantizeMatMulsDynamic(model: Model, nodes: readonly Node[]): number {
  const g = model.graph;
  let count = 0;
  for (const node of nodes) {
    if (node.opType !== 'MatMul' || node.domain || node.graph !== g) continue;
    const w = constWeight2D(node);
    if (!w) continue;
    const { q, scale } = lazyQuantizeColumnsInt8(w.const!);
    const folded = biasAdd(node, w.const!.shape[1]!);
    const init = (suffix: string, t: Tensor): Value => g.initializers.get(`${w.name}_${suffix}`) ?? g.addInitializer(`${w.name}_${suffix}`, t);
    const dq = new Node('DynamicQuantizeMatMul', node.name.replace(/MatMul(_\d+)?$/, 'DynamicQuantizeMatMul$1'), MS_DOMAIN);
    dq.inputs.push(node.inputs[0]!, init('quantized', q), init('scale', scale), null, folded?.bias ?? null);
    replaceLinear(g, node, folded, dq);
    count++;
  }
  if (count) model.opsetImports.set(MS_DOMAIN, 1);
  return count;
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
