import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelFormatError } from '../src/errors.js';
import type { Tensor } from '../src/core/tensor.js';
import { findWeights } from '../src/tensors/checkpoint.js';
import { SafetensorsFile, writeSafetensors } from '../src/tensors/safetensors.js';
import { toFloat32 } from '../src/core/float.js';

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

const copies: string[] = [];
process.on('exit', () => { for (const d of copies) rmSync(d, { recursive: true, force: true }); });

/** A fresh temporary folder, removed with everything in it when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  copies.push(dir);
  return dir;
}

/**
 * A temporary copy of a model folder (config.json + its safetensors weights) with the config
 * and/or the tensors edited; removed when the test process exits.
 */
export function editedCopy(from: string, edit: { config?: (c: Record<string, unknown>) => void; tensors?: (m: Map<string, Tensor>) => void } = {}): string {
  const dir = tempDir('smash-edited-');
  const config = JSON.parse(readFileSync(join(from, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit.config?.(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const weights = findWeights(from);
  const out = join(dir, basename(weights));
  if (!edit.tensors) copyFileSync(weights, out);
  else {
    const f = SafetensorsFile.open(weights);
    const m = new Map<string, Tensor>(f.names.map((n) => [n, f.tensor(n)]));
    edit.tensors(m);
    writeSafetensors(out, m);
  }
  return dir;
}

/** Asserts a ModelFormatError with `code` whose message names every one of `mentions`. */
export function expectFormatError(fn: () => unknown, code: string, ...mentions: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const m of mentions) assert.ok(typeof m === 'string' ? e.message.includes(m) : m.test(e.message), `message names ${m}: ${e.message}`);
    return true;
  });
}

/**
 * Tensor and value counts of a checkpoint folder, read straight from its safetensors headers
 * (8-byte length, JSON; not through src/), so expected figures come from the checkpoint itself.
 * Files named reference.safetensors (test references, not weights) are left out.
 */
export function checkpointCounts(dir: string): { tensors: number; count: number; byDtype: Record<string, { tensors: number; count: number }> } {
  const out = { tensors: 0, count: 0, byDtype: {} as Record<string, { tensors: number; count: number }> };
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.safetensors') && n !== 'reference.safetensors')) {
    const buf = readFileSync(join(dir, name));
    const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
    for (const [key, entry] of Object.entries(header)) {
      if (key === '__metadata__') continue;
      const n = entry.shape.reduce((a, b) => a * b, 1);
      out.tensors++;
      out.count += n;
      const d = (out.byDtype[entry.dtype] ??= { tensors: 0, count: 0 });
      d.tensors++;
      d.count += n;
    }
  }
  return out;
}
