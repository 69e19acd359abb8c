import { onnxDataType } from '../../core/dtype.js';
import { Graph, Node, Value, type Model } from '../graph.js';
import { castTensor } from '../../core/float.js';
import type { Pass } from './pass.js';

const FLOAT = onnxDataType('float32');
const FLOAT16 = onnxDataType('float16');

/**
 * Converts a float32 graph to float16 compute (as onnxconverter-common's
 * convert_float_to_float16 with keep_io_types): float32 weights and constants become float16
 * (converted lazily, when saved), Casts to float become Casts to float16, and the graph's float
 * inputs and outputs stay float32 behind a Cast, so callers feed and read float32 as before.
 * Meant for GPU providers: on CPU most kernels have no float16 and onnxruntime inserts Casts.
 */
export const float16: Pass = {
  name: 'float16',
  run(model: Model) {
    const g = model.graph;
    let changed = convertGraph(g);
    const first = g.nodeList()[0];
    for (const input of g.inputs) {
      if (input.dtype !== 'float32' || input.uses.size === 0) continue;
      const cast = new Node('Cast', `${input.name}_to_fp16`);
      cast.attributes.set('to', { type: 'int', value: FLOAT16 });
      cast.outputs.push(new Value(`${input.name}_fp16`, 'float16', input.shape));
      const uses = input.useList();
      cast.inputs.push(input);
      g.insert(cast, first);
      for (const u of uses) u.node.setInput(u.index, cast.outputs[0]!);
      changed = true;
    }
    g.outputs.forEach((out, i) => {
      if (out.dtype !== 'float32') return;
      // the computed value keeps float16 under a new name; the output name goes to the Cast
      const inner = new Value(`${out.name}_fp16`, 'float16', out.shape);
      const producer = out.producer;
      if (!producer) return;
      producer.outputs[out.outputIndex] = inner;
      inner.producer = producer;
      inner.outputIndex = out.outputIndex;
      for (const u of out.useList()) u.node.setInput(u.index, inner);
      const cast = new Node('Cast', `${out.name}_to_fp32`);
      cast.attributes.set('to', { type: 'int', value: FLOAT });
      cast.inputs.push(inner);
      cast.outputs.push(out);
      g.insert(cast);
      g.outputs[i] = out;
      changed = true;
    });
    return { model, changed };
  },
};

/** Inputs that the ONNX spec requires to be float32 whatever the data type (Resize's roi and scales). */
const FLOAT32_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };

function keepsFloat32(v: Value): boolean {
  const uses = [...v.uses];
  return uses.length > 0 && uses.every((u) => FLOAT32_INPUTS[u.node.opType]?.includes(u.index));
}

function convertGraph(g: Graph): boolean {
  let changed = false;
  for (const v of g.initializers.values()) {
    if (v.const!.dtype === 'float32' && !keepsFloat32(v)) {
      v.const = castTensor(v.const!, 'float16');
      v.dtype = 'float16';
      changed = true;
    }
  }
  for (const n of g.nodes()) {
    for (const o of n.outputs) if (o.dtype === 'float32' && !g.outputs.includes(o) && !keepsFloat32(o)) o.dtype = 'float16';
    if (n.opType === 'Cast' && !n.domain && n.attrInt('to', 0) === FLOAT) {
      n.attributes.set('to', { type: 'int', value: FLOAT16 });
      changed = true;
    }
    for (const [k, a] of n.attributes) {
      if (a.type === 'tensor' && a.value.dtype === 'float32' && !(n.opType === 'Constant' && keepsFloat32(n.outputs[0]!))) {
        n.attributes.set(k, { type: 'tensor', value: castTensor(a.value, 'float16') });
        changed = true;
      }
    }
    for (const sg of n.subgraphs()) if (convertGraph(sg)) changed = true;
  }
  return changed;
}
