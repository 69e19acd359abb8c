import type { DType } from '../core/dtype.js';
import type { Tensor } from '../core/tensor.js';

/** A dimension: a fixed size, a symbolic name (dynamic axis), or unknown. */
export type Dim = number | string | null;

/** One use of a value: node input `index` of `node`. */
export interface Use {
  node: Node;
  index: number;
}

/**
 * A value flowing through a graph: a graph input, an initializer (it has `const`), or a node
 * output. It knows its producer and its uses, so rewrites never search the graph for them.
 */
export class Value {
  producer?: Node;
  /** position among the producer's outputs */
  outputIndex = 0;
  readonly uses = new Set<Use>();
  /** set for initializers */
  const?: Tensor;
  constructor(public name: string, public dtype?: DType, public shape?: Dim[]) {}

  isInitializer(): boolean {
    return this.const !== undefined;
  }
  /** The uses as a list (a snapshot, safe to iterate while rewriting). */
  useList(): Use[] {
    return [...this.uses];
  }
}

export type AttrValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: Tensor[] }
  | { type: 'graphs'; value: Graph[] }
  /** TypeProto, SparseTensor(s) and TypeProto lists are kept as decoded protobuf objects. */
  | { type: 'type_proto' | 'type_protos' | 'sparse_tensor' | 'sparse_tensors'; value: unknown };

/** Plain JS values become typed attributes: number → int if integral else float, etc. */
export type AttrInput = AttrValue | number | string | number[] | string[] | Tensor | Graph;

export class Node {
  graph?: Graph;
  readonly inputs: (Value | null)[] = [];
  readonly outputs: Value[] = [];
  readonly attributes = new Map<string, AttrValue>();
  /** NodeProto.metadata_props (e.g. `namespace`: the module path the node belongs to) */
  readonly metadata = new Map<string, string>();
  docString?: string;
  /** @internal this node's box in its graph's node list (a new one each time it is inserted) */
  link?: Link;
  constructor(public opType: string, public name = '', public domain = '') {}

  /** The node after this one in its graph (undefined when last or not in a graph). */
  get next(): Node | undefined {
    return this.link && !this.link.erased ? this.link.next.node : undefined;
  }
  /** The node before this one in its graph. */
  get prev(): Node | undefined {
    return this.link && !this.link.erased ? this.link.prev.node : undefined;
  }

  attr(name: string): AttrValue | undefined {
    return this.attributes.get(name);
  }
  attrInt(name: string, dflt: number): number {
    const a = this.attributes.get(name);
    return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
  }
  attrInts(name: string): number[] | undefined {
    const a = this.attributes.get(name);
    return a?.type === 'ints' ? a.value : undefined;
  }
  /** Replaces input `i`, keeping use lists consistent. */
  setInput(i: number, v: Value | null): void {
    const old = this.inputs[i];
    if (old) for (const u of old.uses) if (u.node === this && u.index === i) old.uses.delete(u);
    this.inputs[i] = v;
    if (v) v.uses.add({ node: this, index: i });
  }
  /** Subgraphs held in attributes (If/Loop/Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes.values()) {
      if (a.type === 'graph') out.push(a.value);
      else if (a.type === 'graphs') out.push(...a.value);
    }
    return out;
  }
  /** op type with its domain, as `inspect` and profiles name it: `com.microsoft.MatMulNBits`. */
  qualifiedType(): string {
    return this.domain && this.domain !== 'ai.onnx' ? `${this.domain}.${this.opType}` : this.opType;
  }
}

export function toAttr(v: AttrInput): AttrValue {
  if (typeof v === 'number') return Number.isInteger(v) ? { type: 'int', value: v } : { type: 'float', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.length && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    return (v as number[]).every(Number.isInteger) ? { type: 'ints', value: v as number[] } : { type: 'floats', value: v as number[] };
  }
  if (v instanceof Graph) return { type: 'graph', value: v };
  if ('type' in v && 'value' in v) return v as AttrValue;
  return { type: 'tensor', value: v as Tensor };
}

/**
 * A box in a graph's circular node list (as onnx-ir's DoublyLinkedSet). Removing a node erases
 * its box but keeps the box's `next`, so an iterator standing on it (or on a chain of erased
 * boxes) goes on to the next live node; a re-inserted node gets a new box.
 */
class Link {
  prev: Link = this;
  next: Link = this;
  erased = false;
  constructor(readonly node?: Node) {}
}

/**
 * A graph: inputs, outputs, initializers and nodes in an order that survives mutation while
 * iterating: `for (const n of graph.nodes())` may remove `n` or any other node (removed nodes are
 * never visited, the iteration never ends early) and insert nodes (those inserted after the
 * current position are visited).
 */
export class Graph {
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Value>();
  docString?: string;
  /** set for subgraphs: the node that owns this graph through an attribute */
  parentNode?: Node;
  /** sentinel of the circular node list */
  private readonly root = new Link();
  private count = 0;
  constructor(public name = 'main_graph') {}

  get nodeCount(): number {
    return this.count;
  }

  *nodes(): Generator<Node> {
    for (let l = this.root.next; l !== this.root; l = l.next) if (!l.erased) yield l.node!;
  }

  nodeList(): Node[] {
    return [...this.nodes()];
  }

  /**
   * Appends (or inserts before `before`) a node; wires its input uses, including those of nodes in
   * its subgraphs that read values of enclosing graphs.
   */
  insert(node: Node, before?: Node): Node {
    if (node.graph) throw new Error(`node ${node.name} already belongs to a graph`);
    if (before && before.graph !== this) throw new Error(`node ${before.name} is not in graph ${this.name}`);
    const at = before ? before.link! : this.root;
    const link = new Link(node);
    link.prev = at.prev;
    link.next = at;
    at.prev.next = link;
    at.prev = link;
    node.link = link;
    node.graph = this;
    this.count++;
    node.inputs.forEach((v, i) => v?.uses.add({ node, index: i }));
    node.outputs.forEach((v, i) => {
      v.producer = node;
      v.outputIndex = i;
    });
    for (const { node: n, index, value } of capturedReads(node)) {
      if (![...value.uses].some((u) => u.node === n && u.index === index)) value.uses.add({ node: n, index });
    }
    return node;
  }

  /**
   * Removes a node and its input uses, and the uses its subgraphs' nodes make of values of
   * enclosing graphs (a removed If no longer keeps those values alive). Its outputs must have no
   * uses left (unless `force`).
   */
  remove(node: Node, force = false): void {
    if (node.graph !== this) throw new Error(`node ${node.name} is not in graph ${this.name}`);
    if (!force) {
      for (const o of node.outputs) {
        if (o.uses.size || this.outputs.includes(o)) throw new Error(`cannot remove ${node.name}: output ${o.name} is still used`);
      }
    }
    for (const v of node.inputs) if (v) for (const u of [...v.uses]) if (u.node === node) v.uses.delete(u);
    for (const { node: n, index, value } of capturedReads(node)) {
      for (const u of [...value.uses]) if (u.node === n && u.index === index) value.uses.delete(u);
    }
    const link = node.link!;
    link.prev.next = link.next;
    link.next.prev = link.prev;
    link.erased = true; // keeps link.next for iterators standing here
    node.link = undefined;
    node.graph = undefined;
    this.count--;
  }

  /**
   * Replaces `old` by `replacement` (inserted where `old` was): each output of `old` is
   * redirected to the value at the same position of `outputs`, then `old` is removed.
   */
  replaceNode(old: Node, replacement: Node[], outputs: Value[]): void {
    if (outputs.length !== old.outputs.length) throw new Error(`${old.name} has ${old.outputs.length} outputs, ${outputs.length} replacements given`);
    for (const n of replacement) this.insert(n, old);
    old.outputs.forEach((o, i) => {
      const to = outputs[i]!;
      // a graph output keeps its name: the replacement value takes it over
      if (this.outputs.includes(o)) {
        to.name = o.name;
        o.name = `${o.name}_replaced`;
      }
      this.replaceAllUses(o, to);
    });
    this.remove(old);
  }

  addInitializer(name: string, t: Tensor): Value {
    if (this.initializers.has(name)) throw new Error(`initializer ${name} already exists`);
    const v = new Value(name, t.dtype, [...t.shape]);
    v.const = t;
    this.initializers.set(name, v);
    return v;
  }

  /** Every value that has a name in this graph (inputs, initializers, node outputs). */
  values(): Map<string, Value> {
    const m = new Map<string, Value>();
    for (const v of this.inputs) m.set(v.name, v);
    for (const [k, v] of this.initializers) m.set(k, v);
    for (const n of this.nodes()) for (const o of n.outputs) if (o.name) m.set(o.name, o);
    return m;
  }

  /** Redirects every use of `from` (and graph outputs) to `to`. */
  replaceAllUses(from: Value, to: Value): void {
    for (const u of from.useList()) u.node.setInput(u.index, to);
    for (let i = 0; i < this.outputs.length; i++) if (this.outputs[i] === from) this.outputs[i] = to;
    // uses inside subgraphs refer to outer values by object too
    for (const n of this.nodes()) for (const g of n.subgraphs()) g.replaceAllUses(from, to);
  }
}

/** A model: one graph plus the ModelProto fields that travel with it. */
export class Model {
  irVersion = 8;
  opsetImports = new Map<string, number>([['', 17]]);
  producerName = 'smash';
  producerVersion = '';
  domain = '';
  modelVersion = 0;
  docString?: string;
  readonly metadataProps = new Map<string, string>();
  /** FunctionProto / TrainingInfoProto entries, kept as decoded objects so they round-trip */
  functions: unknown[] = [];
  trainingInfo: unknown[] = [];
  constructor(public graph: Graph) {}
}

/**
 * The inputs of nodes inside `node`'s subgraphs (at any depth) that read values defined outside
 * them: the captures through which an If/Loop/Scan body reads its enclosing scopes.
 */
function capturedReads(node: Node): { node: Node; index: number; value: Value }[] {
  const subgraphs = node.subgraphs();
  if (!subgraphs.length) return [];
  const own = new Set<Value>();
  const inner: Node[] = [];
  const collect = (g: Graph) => {
    for (const v of g.inputs) own.add(v);
    for (const v of g.initializers.values()) own.add(v);
    for (const n of g.nodes()) {
      inner.push(n);
      for (const o of n.outputs) own.add(o);
      for (const sg of n.subgraphs()) collect(sg);
    }
  };
  for (const sg of subgraphs) collect(sg);
  const out: { node: Node; index: number; value: Value }[] = [];
  for (const n of inner) n.inputs.forEach((v, index) => { if (v && !own.has(v)) out.push({ node: n, index, value: v }); });
  return out;
}

/** Every node of a graph and of its subgraphs, depth first. */
export function* allNodes(g: Graph): Generator<Node> {
  for (const n of g.nodes()) {
    yield n;
    for (const sg of n.subgraphs()) yield* allNodes(sg);
  }
}
