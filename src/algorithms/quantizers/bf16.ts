/**
 * bf16: bfloat16 weights and compute where the execution provider has bfloat16 kernels, float32
 * graph inputs and outputs. bfloat16 keeps float32's exponent range (no overflow, unlike float16)
 * at 8 bits of precision. A separate algorithm from fp16 rather than a `dtype` of it because
 * support depends on the provider alone: `supports()` sees the target, not hyperparameters, and
 * must refuse the providers without bfloat16 kernels (cpu, wasm, webgpu) before any work.
 *
 * Reuses fp16's float16 pass with `dtype: 'bfloat16'`. Kept in float32: timestep and rotary
 * arithmetic (the pass's islands), modules the user names, every op the provider's profile lists
 * no bfloat16 kernel for (on CUDA: Conv, Resize, Where and the GroupNorm decomposition's
 * ReduceMean/Pow/Sqrt; runtime/profiles.ts), and a VAE whose config says `force_upcast` (diffusers
 * upcasts only under float16, but the VAE is convolutions that would stay float32 anyway, and its
 * output is the image, where bfloat16's 2^-8 steps show as banding).
 */
import { z } from 'zod';
import type { Graph, Model, Node } from '../../ir/graph.js';
import { modulePath, selectNodes } from '../../ir/modules.js';
import { float16Pass, float32Islands } from '../../ir/passes/float16.js';
import { refreshBlocks } from '../../ir/blocks.js';
import { PROFILES, profileRunsBf16, type ProfileName } from '../../runtime/profiles.js';
import { defineAlgorithm, supported, unsupported, type ComponentInfo } from '../algorithm.js';

/** Float nodes whose op has no bfloat16 kernel on `profile`: they compute in float32 behind Casts. */
export function withoutBf16Kernel(g: Graph, profile: ProfileName): Node[] {
  return g.nodeList().filter((n) => !profileRunsBf16(profile, n.qualifiedType()) && [...n.inputs, ...n.outputs].some((v) => v?.dtype === 'float32'));
}

const skipped = (component: ComponentInfo, model: Model) => component.role === 'other' || model.metadataProps.get('force_upcast') === 'true';

export const bf16 = defineAlgorithm({
  name: 'bf16',
  kind: 'quantizer',
  description: 'bfloat16 weights and compute where the provider has bfloat16 kernels (CUDA: MatMul, Gemm, attention, LayerNorm, elementwise; convolutions stay float32), float32 inputs and outputs; not on cpu, wasm or webgpu (no bfloat16 kernels)',
  schema: z.object({
    keep: z.array(z.string()).default([]).describe('module globs kept in float32 (beside timestep/rotary arithmetic, ops without bfloat16 kernels and force_upcast VAEs)'),
  }),
  supports: (t) => {
    const p = PROFILES[t.provider ?? 'cpu'];
    return p.bf16.has('MatMul') ? supported : unsupported(`${p.bf16Missing ?? `${p.name} has no bfloat16 MatMul kernel`}; fp16 runs there`);
  },
  apply(p, target) {
    const profile = target.provider ?? 'cpu';
    const keep = (g: Graph) => [...withoutBf16Kernel(g, profile), ...(p.keep.length ? selectNodes(g, { include: p.keep }) : [])];
    return {
      transform(component, model) {
        if (skipped(component, model)) return model;
        float16Pass({ dtype: 'bfloat16', keep }).run(model);
        // the pass renames graph-edge values (`x_bf16`): block records follow
        refreshBlocks(model);
        return model;
      },
      // every top-level module with a float op that converts
      touches: (component, model) => {
        if (skipped(component, model)) return [];
        const kept = new Set([...keep(model.graph), ...float32Islands(model.graph)]);
        const converts = (n: Node) => !kept.has(n) && [...n.inputs, ...n.outputs].some((v) => v?.dtype === 'float32');
        return [...new Set(model.graph.nodeList().filter(converts).map((n) => modulePath(n).split('.')[0]!))].filter(Boolean);
      },
    };
  },
});
