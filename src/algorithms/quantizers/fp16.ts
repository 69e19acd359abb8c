/**
 * fp16: float16 weights and compute with float32 graph inputs and outputs, keeping in float32
 * what half precision cannot hold: timestep and rotary arguments (the float16 pass's own islands),
 * modules the user names, and a VAE whose config says `force_upcast` (SDXL's overflows in
 * float16; diffusers upcasts it too). For GPU providers: on CPU most kernels have no float16 and
 * onnxruntime adds Casts, so it mostly halves memory there.
 */
import { z } from 'zod';
import { modulePath, selectNodes } from '../../ir/modules.js';
import { float16Pass } from '../../ir/passes/float16.js';
import { refreshBlocks } from '../../ir/blocks.js';
import { defineAlgorithm, supported } from '../algorithm.js';

export const fp16 = defineAlgorithm({
  name: 'fp16',
  kind: 'quantizer',
  description: 'float16 weights and compute, float32 inputs and outputs; on CPU it mostly halves memory (kernels run in float32), on GPUs it is faster',
  schema: z.object({
    keep: z.array(z.string()).default([]).describe('module globs kept in float32 (beside timestep/rotary arithmetic and force_upcast VAEs)'),
  }),
  supports: () => supported,
  apply(p) {
    return {
      transform(component, model) {
        if (component.role === 'other' || model.metadataProps.get('force_upcast') === 'true') return model;
        float16Pass({ keep: (g) => (p.keep.length ? selectNodes(g, { include: p.keep }) : []) }).run(model);
        // float16 renames graph-edge values (`x_fp16`): block records follow
        refreshBlocks(model);
        return model;
      },
      // every top-level module (the whole graph converts)
      touches: (component, model) =>
        component.role === 'other' || model.metadataProps.get('force_upcast') === 'true' ? [] : [...new Set(model.graph.nodeList().map((n) => modulePath(n).split('.')[0]!))].filter(Boolean),
    };
  },
});
