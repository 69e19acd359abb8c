import { readJsonObject } from '../json.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../errors.js';

/**
 * A model's config.json with typed, checked access. Every read names the key, so a value the
 * builder does not implement fails with a ModelFormatError naming key and value, never a
 * silently different graph.
 */
export class ModelConfig {
  constructor(readonly raw: Record<string, unknown>, readonly file: string) {}

  static load(folder: string): ModelConfig {
    const file = folder.endsWith('.json') ? folder : join(folder, 'config.json');
    if (!existsSync(file)) throw new ModelFormatError('CONFIG_MISSING', 'no config.json', { file });
    return new ModelConfig(readJsonObject(file, 'config', 'CONFIG_JSON'), file);
  }

  /** `_class_name` (diffusers) or `architectures[0]` (transformers). */
  get className(): string {
    const c = this.raw._class_name ?? (Array.isArray(this.raw.architectures) ? this.raw.architectures[0] : undefined);
    return typeof c === 'string' ? c : '';
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  private fail(key: string, msg: string): never {
    throw new ModelFormatError('CONFIG_VALUE', `config key '${key}' ${msg}`, { file: this.file });
  }

  num(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  int(key: string, dflt?: number): number {
    const v = this.num(key, dflt);
    if (!Number.isInteger(v)) this.fail(key, `must be an integer, got ${v}`);
    return v;
  }
  bool(key: string, dflt?: boolean): boolean {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str(key: string, dflt?: string): string {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
  /** A string (or null) that must be one of `allowed`. */
  oneOf<T extends string | null>(key: string, allowed: readonly T[], dflt?: T): T {
    const v = (this.raw[key] === undefined ? dflt : this.raw[key]) as T;
    if (!allowed.includes(v)) this.fail(key, `= ${JSON.stringify(v)} is not supported (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
    return v;
  }
  /** A number, or a per-level list of numbers of length `n` (diffusers allows both). */
  perLevel(key: string, n: number, dflt?: number | number[]): number[] {
    const v = this.raw[key] ?? dflt;
    if (typeof v === 'number') return Array(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'number')) return v as number[];
    this.fail(key, `must be a number or a list of ${n} numbers, got ${JSON.stringify(v)}`);
  }
  list<T>(key: string, dflt?: T[]): T[] {
    const v = this.raw[key] ?? dflt;
    if (!Array.isArray(v)) this.fail(key, `must be a list, got ${JSON.stringify(v)}`);
    return v as T[];
  }
  /** Fails unless the key is absent, null, or equal to one of `ok` (for options we do not build). */
  expect(key: string, ok: readonly unknown[]): void {
    const v = this.raw[key];
    if (v === undefined || v === null) return;
    if (!ok.some((o) => JSON.stringify(o) === JSON.stringify(v))) this.fail(key, `= ${JSON.stringify(v)} is not supported (supported: ${ok.map((o) => JSON.stringify(o)).join(', ')})`);
  }
}
