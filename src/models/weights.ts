import { ModelFormatError } from '../errors.js';
import type { DType } from '../core/dtype.js';
import { LazyTensor, type Tensor } from '../core/tensor.js';
import { castTensor } from '../core/float.js';

/**
 * Where weights come from: a Checkpoint (safetensors files) satisfies it; so does a generated
 * source (random weights, src/random), which uses the shape the architecture asks for.
 */
export interface WeightSource {
  /** a file or description of the source, for error messages */
  readonly source: string;
  readonly names: string[];
  has(name: string): boolean;
  fileOf(name: string): string | undefined;
  /** `shape`: what the architecture expects (a checkpoint ignores it; Weights checks it) */
  tensor(name: string, shape?: readonly number[]): Tensor;
}

/**
 * Weights for a graph builder: looked up by checkpoint name, checked against the shape the
 * architecture expects, and converted to the graph's dtype lazily (read when the model is
 * saved or run, one tensor at a time).
 */
export class Weights {
  constructor(
    readonly checkpoint: WeightSource,
    readonly dtype: DType = 'float32',
    private readonly prefix = '',
    private readonly used = new Set<string>(),
  ) {}

  /** A view of the weights under a module prefix (`text_model.` …), sharing the used-set. */
  under(prefix: string): Weights {
    return new Weights(this.checkpoint, this.dtype, this.prefix + prefix, this.used);
  }

  has(name: string): boolean {
    return this.checkpoint.has(this.prefix + name);
  }

  /** The tensor `name`, which must have `shape` (checked before any data is read). */
  get(name: string, shape?: readonly number[]): Tensor {
    const full = this.prefix + name;
    const t = this.checkpoint.tensor(full, shape);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new ModelFormatError('WEIGHT_SHAPE', `has shape [${t.shape.join(', ')}] but the config implies [${shape.join(', ')}]`, { file: this.checkpoint.fileOf(full), tensor: full });
    }
    this.used.add(full);
    return castTensor(t, t.dtype.startsWith('float') || t.dtype === 'bfloat16' ? this.dtype : t.dtype);
  }

  /** A Linear weight [out, in] as the [in, out] matrix MatMul wants, transposed when read. */
  linear(name: string, outFeatures: number, inFeatures: number): Tensor {
    const w = this.get(name, [outFeatures, inFeatures]);
    return transposed2d(w);
  }

  /** Names in the checkpoint that no builder asked for. */
  unused(): string[] {
    return this.checkpoint.names.filter((n) => n.startsWith(this.prefix) && !this.used.has(n));
  }
}

/** [r, c] -> [c, r], computed lazily. */
export function transposed2d(t: Tensor): Tensor {
  const [r, c] = t.shape as [number, number];
  const size = t.byteLength / (r * c);
  return new LazyTensor(t.dtype, [c, r], () => {
    const src = t.bytes();
    const out = new Uint8Array(src.byteLength);
    if (size === 4) {
      const s = new Uint32Array(src.buffer, src.byteOffset, r * c);
      const d = new Uint32Array(out.buffer);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) d[j * r + i] = s[i * c + j]!;
    } else if (size === 2) {
      const s = new Uint16Array(src.buffer, src.byteOffset, r * c);
      const d = new Uint16Array(out.buffer);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) d[j * r + i] = s[i * c + j]!;
    } else {
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out.set(src.subarray((i * c + j) * size, (i * c + j + 1) * size), (j * r + i) * size);
    }
    return out;
  });
}
