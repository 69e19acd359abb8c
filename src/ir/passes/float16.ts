import { onnxDataType } from '../../core/dtype.js';
import { Graph, Node, Value, type Model } from '../graph.js';
import { castTensor } from '../../core/float.js';
import type { Pass } from './pass.js';
import { inferDtypes } from '../type-inference.js';

const FLOAT = onnxDataType('float32');

/** The half-precision type a pass converts to, and the suffix of the values it renames. */
export type HalfDType = 'float16' | 'bfloat16';
const SUFFIX: Record<HalfDType, string> = { float16: 'fp16', bfloat16: 'bf16' };

/**
 * Converts a float32 graph to float16 compute (as onnxconverter-common's
 * convert_float_to_float16 with keep_io_types): float32 weights and constants become float16
 * (converted lazily, when saved), Casts to float become Casts to float16, and the graph's float
 * inputs and outputs stay float32 behind a Cast, so callers feed and read float32 as before.
 * Meant for GPU providers: on CPU most kernels have no float16 and onnxruntime inserts Casts.
 * `dtype: 'bfloat16'` converts to bfloat16 the same way (the bf16 algorithm).
 */
export function float16Pass(opts: { keep?: (g: Graph) => Iterable<Node>; dtype?: HalfDType } = {}): Pass {
  const half = opts.dtype ?? 'float16';
  const HALF = onnxDataType(half);
  const sfx = SUFFIX[half];
  return {
    name: half,
    run(model: Model) {
      const g = model.graph;
      inferDtypes(g);
      // the caller's float32 nodes (modules that overflow in half precision) join the islands
      const keep = float32Islands(g);
      for (const n of opts.keep?.(g) ?? []) keep.add(n);
      let changed = convertGraph(g, half, keep);
      const first = g.nodeList()[0];
      for (const input of g.inputs) {
        const uses = input.useList().filter((u) => !keep.has(u.node));
        if (input.dtype !== 'float32' || uses.length === 0) continue;
        const cast = new Node('Cast', `${input.name}_to_${sfx}`);
        cast.attributes.set('to', { type: 'int', value: HALF });
        cast.outputs.push(new Value(`${input.name}_${sfx}`, half, input.shape));
        cast.inputs.push(input);
        g.insert(cast, first);
        for (const u of uses) u.node.setInput(u.index, cast.outputs[0]!);
        changed = true;
      }
      g.outputs.forEach((out, i) => {
        if (out.dtype !== 'float32' || (out.producer && keep.has(out.producer))) return;
        // the computed value keeps half precision under a new name; the output name goes to the Cast
        const inner = new Value(`${out.name}_${sfx}`, half, out.shape);
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
}

/** The whole graph in float16 but for the float32 islands. */
export const float16: Pass = float16Pass();

/** Inputs that the ONNX spec requires to be float32 whatever the data type (Resize's roi and scales). */
const FLOAT32_INPUTS: Record<string, number[]> = { Resize: [1, 2], Upsample: [1] };

function keepsFloat32(v: Value, keep: Set<Node>): boolean {
  const uses = [...v.uses];
  return uses.length > 0 && uses.every((u) => keep.has(u.node) || FLOAT32_INPUTS[u.node.opType]?.includes(u.index));
}

/** Cheap elementwise and shape ops through which the argument of a Sin/Cos is computed. */
const ARGUMENT_OPS = new Set(['Mul', 'Div', 'Add', 'Sub', 'Neg', 'Exp', 'Pow', 'Unsqueeze', 'Squeeze', 'Reshape', 'Expand', 'Concat', 'Gather', 'Slice', 'Transpose', 'Constant', 'Cast', 'Range', 'Identity']);

/**
 * Nodes that stay float32: the Sin/Cos of timestep and rotary embeddings and the arithmetic
 * computing their arguments (timestep × 1000 × frequencies reaches hundreds of radians, where
 * float16's spacing is 0.25), as diffusers computes them in float32 under bf16/fp16 too.
 */
export function float32Islands(g: Graph): Set<Node> {
  const keep = new Set<Node>();
  const stack = g.nodeList().filter((n) => (n.opType === 'Sin' || n.opType === 'Cos') && !n.domain);
  while (stack.length) {
    const n = stack.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    for (const v of n.inputs) {
      const p = v?.producer;
      if (p && p.graph === g && !p.domain && ARGUMENT_OPS.has(p.opType) && !keep.has(p)) stack.push(p);
    }
  }
  return keep;
}

function convertGraph(g: Graph, half: HalfDType, keep: Set<Node> = new Set()): boolean {
  const HALF = onnxDataType(half);
  const sfx = SUFFIX[half];
  let changed = false;
  for (const v of g.initializers.values()) {
    if (v.const!.dtype === 'float32' && !keepsFloat32(v, keep)) {
      v.const = castTensor(v.const!, half);
      v.dtype = half;
      changed = true;
    }
  }
  for (const n of g.nodes()) {
    if (keep.has(n)) continue;
    n.outputs.forEach((o, i) => {
      // LayerNormalization's mean and inverse std-dev follow stash_type, not the data
      if (n.opType === 'LayerNormalization' && i > 0) return;
      if (o.dtype === 'float32' && !g.outputs.includes(o) && !keepsFloat32(o, new Set())) o.dtype = half;
    });
    if (n.opType === 'Cast' && !n.domain && n.attrInt('to', 0) === FLOAT) {
      n.attributes.set('to', { type: 'int', value: HALF });
      changed = true;
    }
    for (const [k, a] of n.attributes) {
      if (a.type === 'tensor' && a.value.dtype === 'float32' && !(n.opType === 'Constant' && keepsFloat32(n.outputs[0]!, new Set()))) {
        n.attributes.set(k, { type: 'tensor', value: castTensor(a.value, half) });
        changed = true;
      }
    }
    for (const sg of n.subgraphs()) if (convertGraph(sg, half, keep)) changed = true;
  }
  // where a float32 island meets half-precision nodes: a Cast each way
  const casts = new Map<Value, Value>();
  const castOf = (v: Value, to: HalfDType | 'float32', before: Node): Value => {
    let c = casts.get(v);
    if (!c) {
      const tag = to === 'float32' ? 'fp32' : sfx;
      const node = new Node('Cast', `${v.name}_to_${tag}`);
      node.attributes.set('to', { type: 'int', value: to === 'float32' ? FLOAT : HALF });
      node.inputs.push(v);
      c = new Value(`${v.name}_${tag}`, to, v.shape);
      node.outputs.push(c);
      g.insert(node, before);
      casts.set(v, c);
    }
    return c;
  };
  for (const n of g.nodeList()) {
    n.inputs.forEach((v, i) => {
      if (!v) return;
      const island = keep.has(n);
      const fromIsland = !!v.producer && keep.has(v.producer);
      if (island && v.dtype === half && !fromIsland) n.setInput(i, castOf(v, 'float32', n));
      else if (!island && fromIsland && v.dtype === 'float32' && !FLOAT32_INPUTS[n.opType]?.includes(i)) n.setInput(i, castOf(v, half, n));
    });
  }
  if (casts.size) changed = true;
  return changed;
}
