/**
 * int8Static: activation scales calibrated on a prompt set (through the pipeline, every step and
 * guidance branch), weights int8 per channel, written as QDQ pairs that ONNX Runtime fuses into
 * `QLinearConv` and `MatMulIntegerToFloat` — the CPU's fastest int8 kernels, and the way to
 * quantize a UNet's convolutions (something Pruna does not offer for diffusion).
 */
import { z } from 'zod';
import { profileRuns } from '../../runtime/profiles.js';
import type { Graph } from '../../ir/graph.js';
import { modulePath } from '../../ir/modules.js';
import { inferDtypes } from '../../ir/type-inference.js';
import { defineAlgorithm, supported, unsupported, type ComponentInfo } from '../algorithm.js';
import { observedValues, quantizable, quantizeStatic, type Range } from './qdq.js';
import { targetFields, targetNodes } from './targets.js';

/** Prompts of no particular model, across subjects: what calibration runs unless told otherwise. */
export const DEFAULT_CALIBRATION_PROMPTS = [
  'a photo of a red fox in the snow',
  'a watercolor painting of a lighthouse at dusk',
  'a close-up of a bowl of ramen, studio lighting',
  'an isometric drawing of a small city with a river',
];

const { components: _components, ...targets } = targetFields;

export const int8Static = defineAlgorithm({
  name: 'int8Static',
  kind: 'quantizer',
  description: 'int8 weights and calibrated int8 activations as QDQ pairs, fused by ONNX Runtime into QLinearConv and MatMulIntegerToFloat (convolutions included)',
  schema: z.object({
    calibrationPrompts: z.array(z.string()).min(1).default(DEFAULT_CALIBRATION_PROMPTS).describe('prompts the calibration generates (use ones like your real prompts)'),
    calibrationSteps: z.number().int().min(1).max(100).optional().describe('denoising steps of each calibration run (default: the pipeline\'s)'),
    calibrationWidth: z.number().int().min(8).max(8192).optional().describe('image width calibration generates at (default: the pipeline\'s): use the size you generate at'),
    calibrationHeight: z.number().int().min(8).max(8192).optional().describe('image height calibration generates at (default: the pipeline\'s)'),
    calibrationMaxSequenceLength: z.number().int().min(1).max(4096).optional().describe('T5 tokens of each calibration prompt (Flux, SD3; default: the pipeline\'s)'),
    ops: z.array(z.enum(['Conv', 'MatMul'])).min(1).default(['Conv', 'MatMul']).describe('which operators to quantize'),
    ...targets,
  }),
  supports: (t) => (profileRuns(t.provider ?? 'cpu', 'com.microsoft.MatMulIntegerToFloat') ? supported : unsupported(`${t.provider} has no fused int8 QDQ kernels (int8WeightOnly runs there)`)),
  apply(p) {
    // the denoiser alone: calibration observes the denoiser's calls
    const t = { ...p, components: ['denoiser'] };
    let ranges: ReadonlyMap<string, Range> | undefined;
    const nodes = (component: ComponentInfo, g: Graph) => {
      // the ranks quantizable() reads: shapes the builder or the file left out, filled in once per model
      inferDtypes(g);
      return targetNodes(g, component, t).filter((n) => (p.ops as string[]).includes(n.opType));
    };
    return {
      calibration: {
        prompts: p.calibrationPrompts,
        steps: p.calibrationSteps,
        generation: { width: p.calibrationWidth, height: p.calibrationHeight, maxSequenceLength: p.calibrationMaxSequenceLength },
        observe: (component, model) => observedValues(nodes(component, model.graph)),
        calibrated: (r) => {
          ranges = r;
        },
      },
      transform(component, model) {
        if (!ranges) throw new Error('int8Static: transform before calibration');
        quantizeStatic(model, nodes(component, model.graph), ranges);
        return model;
      },
      touches: (component, model) => [...new Set(quantizable(nodes(component, model.graph)).map(modulePath))],
    };
  },
});
