import type { DType } from '../core/dtype.js';
import { Graph, Model, Node, Value, toAttr, type AttrInput, type Dim } from './graph.js';
import { InMemoryTensor, type Tensor } from '../core/tensor.js';
import { setModulePath } from './modules.js';
import { inferNodeTypes } from './type-inference.js';

export interface OpOptions {
  /** node name within the current scope (default: the op type) */
  name?: string;
  domain?: string;
  outputs?: number;
  /** dtype of every output, for ops whose output dtype is not inferred */
  dtype?: DType;
}

/**
 * Builds graphs with the names PyTorch's exporter gives them: a scope stack of module names
 * yields node names `/down_blocks.0/resnets.1/conv1/Conv` and initializer names
 * `down_blocks.0.resnets.1.conv1.weight`, so users, quantizers and cachers can target modules.
 * Every node also records its module path as metadata (`pkg.torch.onnx.name_scopes`, see
 * modules.ts), which survives renaming passes and is what `modulePath(node)` reads first.
 */
export class GraphBuilder {
  readonly graph: Graph;
  private readonly scopes: string[] = [];
  private readonly used = new Set<string>();

  constructor(graph: Graph | string = 'main_graph') {
    this.graph = typeof graph === 'string' ? new Graph(graph) : graph;
    for (const n of this.graph.nodes()) this.used.add(n.name);
    for (const k of this.graph.values().keys()) this.used.add(k);
  }

  /** Runs `fn` inside a module scope (`scope('down_blocks.0', …)`; dotted paths allowed). */
  scope<T>(name: string | number, fn: () => T): T {
    this.scopes.push(String(name));
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** The current module path, dotted (`down_blocks.0.resnets.1`). */
  get path(): string {
    return this.scopes.filter(Boolean).join('.');
  }

  /** Unique name: `base`, then `base_1`, `base_2`… */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: Dim[]): Value {
    const v = new Value(this.unique(name), dtype, shape);
    this.graph.inputs.push(v);
    return v;
  }

  output(v: Value, name?: string, dtype?: DType, shape?: Dim[]): Value {
    let out = v;
    // a graph output that is also an input or another output needs its own Identity
    if (name && v.name !== name) {
      if (v.producer && !this.graph.outputs.includes(v) && !this.used.has(name)) {
        this.used.add(name);
        v.name = name;
      } else out = this.op('Identity', [v], {}, { name: 'Identity' });
      if (out.name !== name) { this.used.add(name); out.name = name; }
    }
    if (dtype) out.dtype = dtype;
    if (shape) out.shape = shape;
    this.graph.outputs.push(out);
    return out;
  }

  /** A named weight of the current module: `weight('weight', t)` → `<module path>.weight`. */
  weight(name: string, t: Tensor): Value {
    const full = this.path ? `${this.path}.${name}` : name;
    const existing = this.graph.initializers.get(full);
    if (existing) return existing;
    this.used.add(full);
    return this.graph.addInitializer(full, t);
  }

  /**
   * An anonymous constant (shape vectors, scalars, eps): a `Constant` node, as PyTorch's exporter
   * emits them, so that initializers are exactly the checkpoint's weights.
   */
  constant(t: Tensor): Value {
    const v = this.op('Constant', [], { value: t });
    v.dtype = t.dtype;
    v.shape = [...t.shape];
    return v;
  }

  constF32(values: number[] | number, shape?: number[]): Value {
    const arr = typeof values === 'number' ? [values] : values;
    return this.constant(new InMemoryTensor('float32', shape ?? (typeof values === 'number' ? [] : [arr.length]), Float32Array.from(arr)));
  }

  constI64(values: number[] | number, shape?: number[]): Value {
    const arr = typeof values === 'number' ? [values] : values;
    return this.constant(new InMemoryTensor('int64', shape ?? (typeof values === 'number' ? [] : [arr.length]), BigInt64Array.from(arr.map((x) => BigInt(x)))));
  }

  /**
   * Adds a node. Its name is `/<scope path with slashes>/<name ?? opType>`; outputs are named
   * `<node name>_output_<i>`. Returns the single output, or all of them when `outputs` > 1.
   * Output dtypes (and shapes where they follow) are inferred from typed inputs (type-inference.ts);
   * `dtype` sets them for ops the inference does not know (contrib ops).
   */
  op(opType: string, inputs: (Value | null | undefined)[], attrs: Record<string, AttrInput | undefined> = {}, opts: OpOptions = {}): Value {
    return this.opN(opType, inputs, attrs, { ...opts, outputs: opts.outputs ?? 1 })[0]!;
  }

  opN(opType: string, inputs: (Value | null | undefined)[], attrs: Record<string, AttrInput | undefined> = {}, opts: OpOptions = {}): Value[] {
    // PyTorch keeps dots in scope names for indexed children: `/down_blocks.0/resnets.1/…`
    const scoped = this.scopes.filter(Boolean).join('/');
    const nodeName = this.unique(`/${scoped ? `${scoped}/` : ''}${opts.name ?? opType}`);
    const node = new Node(opType, nodeName, opts.domain ?? '');
    setModulePath(node, this.path);
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.attributes.set(k, toAttr(v));
    for (const v of inputs) node.inputs.push(v ?? null);
    for (let i = 0; i < (opts.outputs ?? 1); i++) node.outputs.push(new Value(this.unique(`${nodeName}_output_${i}`)));
    this.graph.insert(node);
    if (opts.dtype) for (const o of node.outputs) o.dtype = opts.dtype;
    inferNodeTypes(node);
    return node.outputs;
  }

  // Sugar for the ops every builder uses.
  add(a: Value, b: Value) { return this.op('Add', [a, b]); }
  sub(a: Value, b: Value) { return this.op('Sub', [a, b]); }
  mul(a: Value, b: Value) { return this.op('Mul', [a, b]); }
  div(a: Value, b: Value) { return this.op('Div', [a, b]); }
  matmul(a: Value, b: Value) { return this.op('MatMul', [a, b]); }
  reshape(x: Value, shape: number[]) { return this.op('Reshape', [x, this.constI64(shape)]); }
  transpose(x: Value, perm: number[]) { return this.op('Transpose', [x], { perm }); }
  concat(xs: Value[], axis: number) { return this.op('Concat', xs, { axis }); }
  unsqueeze(x: Value, axes: number[]) { return this.op('Unsqueeze', [x, this.constI64(axes)]); }
  squeeze(x: Value, axes: number[]) { return this.op('Squeeze', [x, this.constI64(axes)]); }
  cast(x: Value, to: number) { return this.op('Cast', [x], { to }); }
  shape(x: Value, start?: number, end?: number) { return this.op('Shape', [x], { start, end }); }
  slice(x: Value, starts: number[], ends: number[], axes: number[], steps?: number[]) {
    return this.op('Slice', [x, this.constI64(starts), this.constI64(ends), this.constI64(axes), steps ? this.constI64(steps) : undefined]);
  }
  split(x: Value, sizes: number[], axis: number) {
    return this.opN('Split', [x, this.constI64(sizes)], { axis }, { outputs: sizes.length });
  }

  /** Wraps the graph in a Model with the given opset imports. */
  model(opsets: Record<string, number> = { '': 17 }): Model {
    const m = new Model(this.graph);
    m.opsetImports = new Map(Object.entries(opsets));
    return m;
  }
}
