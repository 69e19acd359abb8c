/** int4WeightOnly: 4-bit blocks in MatMulNBits; activations stay float. An 8× smaller download. */
import { z } from 'zod';
import { defineAlgorithm, supported } from '../algorithm.js';
import { quantizeMatMulsNBits } from './nbits.js';
import { targetFields, targetLinears, targetNodes } from './targets.js';

export const weightOnlyFields = {
  blockSize: z.union([z.literal(32), z.literal(64), z.literal(128)]).default(32).describe('weights per scale along K: 32, 64 or 128'),
  zeroPoints: z.boolean().default(false).describe('asymmetric blocks with a zero point each'),
  ...targetFields,
};

export const int4WeightOnly = defineAlgorithm({
  name: 'int4WeightOnly',
  kind: 'quantizer',
  description: '4-bit weights in blocks with one scale each (MatMulNBits: CPU, CUDA, WebGPU); activations stay float',
  schema: z.object(weightOnlyFields),
  supports: () => supported,
  apply(p) {
    return {
      transform(component, model) {
        quantizeMatMulsNBits(model, targetNodes(model.graph, component, p), { bits: 4, blockSize: p.blockSize, zeroPoints: p.zeroPoints });
        return model;
      },
      touches: (component, model) => targetLinears(model.graph, component, p),
    };
  },
});
