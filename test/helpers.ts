import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../src/tensors/safetensors.js';
import { toFloat32 } from '../src/tensors/convert.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

export function fixture(...parts: string[]): string {
  return join(FIXTURES, ...parts);
}

/** ‖a − b‖ / ‖b‖ */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.sqrt(den || 1e-30);
}

/** Reads a float tensor of a fixture file as Float32Array, with its shape. */
export function readF32(file: string, key: string): { data: Float32Array; shape: number[] } {
  const f = SafetensorsFile.open(file);
  const t = f.tensor(key);
  return { data: toFloat32(t), shape: [...t.shape] };
}
