/** How many bytes converting a checkpoint will write, from its headers alone (nothing is read). */
import { numel } from '../core/dtype.js';
import { Checkpoint } from './checkpoint.js';

/** Bytes of a component folder's weights once stored as `dtype` (float32: 4 bytes, float16: 2). */
export function convertedBytes(folder: string, dtype: 'float32' | 'float16', variant?: string): number {
  const ck = Checkpoint.open(folder, variant);
  const per = dtype === 'float16' ? 2 : 4;
  let total = 0;
  for (const name of ck.names) {
    const e = ck.entry(name)!;
    total += numel(e.shape) * (e.dtype.startsWith('float') || e.dtype === 'bfloat16' ? per : Math.max(1, e.length / Math.max(1, numel(e.shape))));
  }
  return total;
}
