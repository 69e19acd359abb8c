/** int8WeightOnly: 8-bit blocks in MatMulNBits; activations stay float. A 4× smaller download. */
import { z } from 'zod';
import { defineAlgorithm, supported } from '../algorithm.js';
import { weightOnlyFields } from './int4-weight-only.js';
import { quantizeMatMulsNBits } from './nbits.js';
import { targetLinears, targetNodes } from './targets.js';

export const int8WeightOnly = defineAlgorithm({
  name: 'int8WeightOnly',
  kind: 'quantizer',
  description: '8-bit weights in blocks with one scale each (MatMulNBits: CPU, CUDA, WebGPU); activations stay float',
  schema: z.object(weightOnlyFields),
  supports: () => supported,
  apply(p) {
    return {
      transform(component, model) {
        quantizeMatMulsNBits(model, targetNodes(model.graph, component, p), { bits: 8, blockSize: p.blockSize, zeroPoints: p.zeroPoints });
        return model;
      },
      touches: (component, model) => targetLinears(model.graph, component, p),
    };
  },
});
