/**
 * SmashConfig: which algorithms to apply, with their hyperparameters, validated against the
 * registry before any work. Built from an object (`{ fora: { interval: 2, startStep: 2 } }`), a JSON
 * file (Pruna's snake_case is accepted: `start_step`, `int8_dynamic`) or CLI flags
 * (`fora.interval=2`). The order of application is derived from kinds and declared constraints.
 */
import type { z } from 'zod';
import { CompatibilityError, ConfigError } from '../errors.js';
import { readJsonObject } from '../json.js';
import { EXCLUSIVE_KINDS, KIND_ORDER, type Algorithm, type SmashTarget } from '../algorithms/algorithm.js';
import { ALGORITHMS, type Registry } from '../algorithms/registry.js';

/** `start_step` -> `startStep`; camelCase stays as it is. */
export function camelCase(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export interface ResolvedAlgorithm {
  algorithm: Algorithm;
  /** hyperparameters with defaults filled in */
  params: Record<string, unknown>;
}

export class SmashConfig {
  /** in order of application */
  readonly steps: readonly ResolvedAlgorithm[];

  constructor(spec: Record<string, unknown>, registry: Registry = ALGORITHMS) {
    if (!spec || typeof spec !== 'object' || Array.isArray(spec)) throw new ConfigError('SMASH_CONFIG', 'a SmashConfig is an object of { algorithm: hyperparameters }');
    const chosen: ResolvedAlgorithm[] = [];
    for (const [rawName, rawParams] of Object.entries(spec)) {
      const name = camelCase(rawName);
      const algorithm = registry.get(name);
      if (!algorithm) {
        throw new ConfigError('UNKNOWN_ALGORITHM', `unknown algorithm '${rawName}' (known: ${[...registry.keys()].join(', ')})`, rawName);
      }
      chosen.push({ algorithm, params: parseParams(algorithm, rawParams ?? {}) });
    }
    checkCompatible(chosen);
    this.steps = order(chosen);
  }

  /** A JSON file: `{ "fora": { "interval": 2, "start_step": 2 }, "int8_dynamic": {} }`. */
  static fromFile(path: string, registry: Registry = ALGORITHMS): SmashConfig {
    return SmashConfig.fromCli(path, [], registry);
  }

  /** CLI flags: `fora` (defaults) or `fora.interval=2`, `int8Dynamic.exclude=*norm*,proj_out`. */
  static fromFlags(flags: readonly string[], registry: Registry = ALGORITHMS): SmashConfig {
    return SmashConfig.fromCli(undefined, flags, registry);
  }

  /** The command line's: a JSON file (or none) with flags over it, a flag's key winning over the file's. */
  static fromCli(file: string | undefined, flags: readonly string[], registry: Registry = ALGORITHMS): SmashConfig {
    const spec: Record<string, unknown> = {};
    const camelKeys = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [camelCase(k), x])) : v);
    if (file) for (const [name, params] of Object.entries(readJsonObject(file, 'SmashConfig', 'SMASH_CONFIG_JSON'))) spec[camelCase(name)] = camelKeys(params);
    for (const flag of flags) {
      const m = /^([A-Za-z0-9_]+)(?:\.([A-Za-z0-9_]+)=(.*))?$/.exec(flag.trim());
      if (!m) throw new ConfigError('SMASH_FLAG', `'${flag}' is not 'algorithm' or 'algorithm.key=value'`, flag);
      const name = camelCase(m[1]!);
      const params = spec[name] ?? {};
      // a file's non-object hyperparameters are left for the constructor to refuse
      spec[name] = m[2] === undefined || typeof params !== 'object' || Array.isArray(params) ? params : { ...params, [camelCase(m[2])]: parseFlagValue(m[3]!, registry.get(name), camelCase(m[2])) };
    }
    return new SmashConfig(spec, registry);
  }

  /** Algorithms that cannot act on this pipeline fail here, before any work, naming the reason. */
  checkSupports(target: SmashTarget): void {
    for (const { algorithm } of this.steps) {
      const s = algorithm.supports(target);
      if (!s.ok) throw new CompatibilityError('UNSUPPORTED', `${algorithm.name} does not support ${target.className}: ${s.reason}`);
    }
  }

  has(name: string): boolean {
    return this.steps.some((s) => s.algorithm.name === name);
  }

  /** What `smash_config.json` stores: names and resolved hyperparameters, in order. */
  toJSON(): Record<string, Record<string, unknown>> {
    return Object.fromEntries(this.steps.map((s) => [s.algorithm.name, s.params]));
  }
}

function parseParams(algorithm: Algorithm, raw: unknown): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError('BAD_HYPERPARAMETERS', `${algorithm.name}: hyperparameters must be an object, got ${JSON.stringify(raw)}`, algorithm.name);
  }
  const camel = Object.fromEntries(Object.entries(raw).map(([k, v]) => [camelCase(k), v]));
  const r = algorithm.schema.strict().safeParse(camel, { reportInput: true });
  if (r.success) return r.data as Record<string, unknown>;
  const issue = r.error.issues[0]!;
  const key = [algorithm.name, ...issue.path.map(String)].join('.');
  throw new ConfigError('BAD_HYPERPARAMETER', `${key}: ${describeIssue(issue, algorithm)}`, key);
}

/** One readable sentence per zod issue, with the allowed values or range. */
function describeIssue(issue: z.core.$ZodIssue, algorithm: Algorithm): string {
  const got = 'input' in issue && issue.input !== undefined ? `, got ${JSON.stringify(issue.input)}` : '';
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown hyperparameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')} (allowed: ${Object.keys(algorithm.schema.shape).join(', ')})`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}${got}`;
    case 'too_small':
      return `must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${got}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got}`;
    case 'invalid_type':
      return `must be ${issue.expected}${got}`;
    default:
      return `${issue.message}${got}`;
  }
}

function parseFlagValue(value: string, algorithm: Algorithm | undefined, key: string): unknown {
  const field = algorithm?.schema.shape[key] as z.ZodType | undefined;
  // arrays of globs are written comma-separated; everything else is JSON where it parses
  if (field && unwrap(field).def.type === 'array') return value.split(',').map((s) => s.trim()).filter(Boolean);
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/** The type under optional/default/nullable wrappers. */
function unwrap(t: z.ZodType): z.ZodType {
  let cur = t;
  while (['optional', 'default', 'nullable'].includes(cur.def.type)) cur = (cur as unknown as { unwrap(): z.ZodType }).unwrap();
  return cur;
}

function checkCompatible(chosen: readonly ResolvedAlgorithm[]): void {
  for (const kind of EXCLUSIVE_KINDS) {
    const same = chosen.filter((c) => c.algorithm.kind === kind).map((c) => c.algorithm.name);
    if (same.length > 1) throw new CompatibilityError('INCOMPATIBLE', `${same.join(' and ')} are both ${kind}s: one ${kind} per pipeline`);
  }
  for (const a of chosen) {
    for (const b of chosen) {
      const why = a.algorithm.incompatibleWith?.[b.algorithm.name];
      if (why) throw new CompatibilityError('INCOMPATIBLE', `${a.algorithm.name} cannot be combined with ${b.algorithm.name}: ${why}`);
    }
  }
}

/**
 * A stable topological order: declared `runsAfter` constraints first, and KIND_ORDER for every
 * pair that declares nothing about the other.
 */
function order(chosen: readonly ResolvedAlgorithm[]): ResolvedAlgorithm[] {
  const names = new Set(chosen.map((c) => c.algorithm.name));
  const after = new Map<string, Set<string>>(chosen.map((c) => [c.algorithm.name, new Set<string>()]));
  const declared = (a: Algorithm, b: Algorithm) => a.runsAfter?.includes(b.name) || b.runsAfter?.includes(a.name);
  for (const c of chosen) {
    const me = c.algorithm;
    for (const dep of me.runsAfter ?? []) if (names.has(dep)) after.get(me.name)!.add(dep);
    for (const o of chosen) {
      if (!declared(me, o.algorithm) && KIND_ORDER.indexOf(o.algorithm.kind) < KIND_ORDER.indexOf(me.kind)) after.get(me.name)!.add(o.algorithm.name);
    }
  }
  const out: ResolvedAlgorithm[] = [];
  const done = new Set<string>();
  let pending = [...chosen];
  while (pending.length) {
    const ready = pending.filter((c) => [...after.get(c.algorithm.name)!].every((d) => done.has(d)));
    if (!ready.length) {
      throw new CompatibilityError('ORDER_CYCLE', `no order satisfies the constraints of ${pending.map((c) => c.algorithm.name).join(', ')}`);
    }
    for (const r of ready) {
      out.push(r);
      done.add(r.algorithm.name);
    }
    pending = pending.filter((c) => !done.has(c.algorithm.name));
  }
  return out;
}
