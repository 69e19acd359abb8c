import { CompatibilityError, ModelFormatError } from '../errors.js';
import type { DType, TypedArray } from '../core/dtype.js';
import { f16ToF32, f32ToF16 } from '../core/float.js';
import type { HostTensor } from './session.js';

/** What a graph declares for one input. */
export interface InputSpec {
  name: string;
  dtype: DType;
  /** declared dims: numbers are fixed, strings/undefined are dynamic; undefined when unknown */
  dims?: readonly (number | string | undefined)[];
}

/**
 * Adapts a feed to what the graph declares, so that graphs exported by other tools (Optimum:
 * int64 or int32 ids and timesteps, float16 models, `img_ids` with a batch axis) run with the
 * same feeds as ours: numeric dtype casts (float→int truncates, as numpy's astype does), a
 * leading axis of 1 added or dropped, and a per-row vector fed to a scalar input as its one value.
 */
export function adaptFeed(t: HostTensor, spec: InputSpec): HostTensor {
  let dims = [...t.dims];
  let data = t.data;
  if (spec.dims && spec.dims.length !== dims.length) {
    if (spec.dims.length === dims.length + 1) dims = [1, ...dims];
    else if (spec.dims.length === dims.length - 1 && dims[0] === 1) dims = dims.slice(1);
    else if (spec.dims.length === 0 && dims.length === 1) {
      data = sharedValue(t, spec.name);
      dims = [];
    } else throw new ModelFormatError('INPUT_RANK', `input '${spec.name}' has rank ${spec.dims.length} in the graph, got [${t.dims.join(', ')}]`);
  }
  return { dtype: spec.dtype, dims, data: t.dtype === spec.dtype ? data : castData(data, t.dtype, spec.dtype, spec.name) };
}

/**
 * Optimum (since 1.24) declares the UNet's `timestep` a scalar: one value for the whole batch,
 * as its own pipelines feed it. A batch whose rows share one value (the two halves of
 * classifier-free guidance) is fed that value; rows that differ cannot be served by the graph.
 */
function sharedValue(t: HostTensor, name: string): TypedArray {
  const d = t.data;
  const n = d.length;
  let same = n > 0;
  for (let i = 1; i < n && same; i++) same = Object.is(d[i], d[0]);
  if (!same) {
    const shown = Array.from(d.subarray(0, 8) as ArrayLike<number | bigint>, String).join(', ') + (n > 8 ? ', …' : '');
    throw new CompatibilityError('INPUT_SCALAR', `input '${name}' is a scalar in the graph (one value for the whole batch), but the ${n} batch rows got [${shown}]: this export cannot give batch rows different values`);
  }
  return d.subarray(0, 1);
}

/** Float16 outputs come back as float32 (our pipelines compute in float32). */
export function adaptOutput(t: HostTensor): HostTensor {
  if (t.dtype !== 'float16') return t;
  return { dtype: 'float32', dims: t.dims, data: castData(t.data, 'float16', 'float32', '') };
}

function readNumbers(data: TypedArray, dtype: DType): (i: number) => number {
  if (dtype === 'float16') return (i) => f16ToF32((data as Uint16Array)[i]!);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) return (i) => Number(data[i]!);
  return (i) => (data as Float32Array)[i]!;
}

function castData(data: TypedArray, from: DType, to: DType, name: string): TypedArray {
  const n = data.length;
  const get = readNumbers(data, from);
  switch (to) {
    case 'float32': return Float32Array.from({ length: n }, (_, i) => get(i));
    case 'float64': return Float64Array.from({ length: n }, (_, i) => get(i));
    case 'float16': return Uint16Array.from({ length: n }, (_, i) => f32ToF16(get(i)));
    case 'int64': return BigInt64Array.from({ length: n }, (_, i) => BigInt(Math.trunc(get(i))));
    case 'int32': return Int32Array.from({ length: n }, (_, i) => Math.trunc(get(i)));
    case 'uint8': case 'bool': return Uint8Array.from({ length: n }, (_, i) => get(i));
    default: throw new ModelFormatError('INPUT_DTYPE', `cannot feed ${from} to input '${name}' of type ${to}`);
  }
}
