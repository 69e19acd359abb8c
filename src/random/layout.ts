/**
 * The checkpoint layout of a config, found by running the architecture's graph builder against a
 * weight source that answers every request with a (lazily generated) random tensor of the shape
 * the builder asks for, and records (name, shape) in request order.
 */
import { ConfigError, ModelFormatError } from '../errors.js';
import { numel, type DType } from '../core/dtype.js';
import { LazyTensor, type Tensor } from '../core/tensor.js';
import { ModelConfig } from '../models/config.js';
import { architectureFor, supportedArchitectures } from '../models/registry.js';
import { Weights, type WeightSource } from '../models/weights.js';
import '../models/architectures.js';
import { generate, initFor, type InitContext, type RandomDType } from './init.js';

export interface LayoutEntry {
  name: string;
  shape: number[];
  dtype: RandomDType;
}

export interface Layout {
  className: string;
  config: Record<string, unknown>;
  entries: LayoutEntry[];
  /** number of values over all tensors */
  values: number;
  /** number of values of the trainable parameters (excludes stored buffers such as SD3's pos_embed) */
  parameters: number;
  /** bytes of tensor data in `dtype` */
  bytes: number;
}

/** Tensors a checkpoint stores that are not parameters (buffers saved with the weights). */
export function isBuffer(className: string, name: string): boolean {
  return className === 'SD3Transformer2DModel' && name === 'pos_embed.pos_embed';
}

/**
 * A WeightSource whose every tensor exists: `tensor(name, shape)` gives a LazyTensor of that
 * shape that generates its values when read (never cached), and records the request.
 */
export class RandomSource implements WeightSource {
  readonly recorded = new Map<string, number[]>();
  private readonly ctx: InitContext;

  constructor(
    readonly className: string,
    readonly config: Record<string, unknown>,
    readonly dtype: RandomDType = 'float32',
    readonly seed = 0,
    readonly source = `<random ${className}>`,
  ) {
    this.ctx = { className, config };
  }

  get names(): string[] {
    return [...this.recorded.keys()];
  }

  /** Every optional weight is present (configs set the switches explicitly). */
  has(_name: string): boolean {
    return true;
  }

  fileOf(_name: string): string | undefined {
    return undefined;
  }

  tensor(name: string, shape?: readonly number[]): Tensor {
    if (!shape) throw new ModelFormatError('WEIGHT_SHAPE', 'a generated weight needs the shape the architecture expects', { file: this.source, tensor: name });
    const prev = this.recorded.get(name);
    if (prev && (prev.length !== shape.length || prev.some((d, i) => d !== shape[i]))) {
      throw new ModelFormatError('WEIGHT_SHAPE', `requested twice with shapes [${prev.join(', ')}] and [${shape.join(', ')}]`, { file: this.source, tensor: name });
    }
    if (!prev) this.recorded.set(name, [...shape]);
    return this.make(name, shape);
  }

  /** The tensor's data, generated on each read. */
  make(name: string, shape: readonly number[]): Tensor {
    const { dtype, seed, ctx } = this;
    const n = numel(shape);
    return new LazyTensor(dtype as DType, [...shape], () => generate(initFor(name, shape, ctx), n, dtype, seed, name));
  }
}

/** Runs the builder of `className` on `config` with a RandomSource; returns the source. */
export function traceBuilder(className: string, config: Record<string, unknown>, dtype: RandomDType = 'float32', seed = 0, label?: string): RandomSource {
  const build = architectureFor(className);
  if (!build) throw new ConfigError('UNKNOWN_CLASS', `--class ${className} is not supported (supported: ${supportedArchitectures().join(', ')})`, 'class');
  const source = new RandomSource(className, config, dtype, seed, label);
  build(new ModelConfig(config, label ?? `<${className} config>`), new Weights(source, 'float32'));
  if (source.recorded.size === 0) throw new ModelFormatError('EMPTY_LAYOUT', `the ${className} builder asked for no weights`, { file: label });
  return source;
}

/** The (name, shape, dtype) of every tensor of a config's checkpoint, without generating data. */
export function layoutOf(className: string, config: Record<string, unknown>, dtype: RandomDType = 'float32', label?: string): Layout {
  const src = traceBuilder(className, config, dtype, 0, label);
  return summarize(className, config, [...src.recorded].map(([name, shape]) => ({ name, shape, dtype })));
}

export function summarize(className: string, config: Record<string, unknown>, entries: LayoutEntry[]): Layout {
  let values = 0;
  let parameters = 0;
  let bytes = 0;
  for (const e of entries) {
    const n = numel(e.shape);
    values += n;
    if (!isBuffer(className, e.name)) parameters += n;
    bytes += n * (e.dtype === 'float32' ? 4 : 2);
  }
  return { className, config, entries, values, parameters, bytes };
}
