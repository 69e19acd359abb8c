/**
 * Output folders we may replace. `--force` replaces what this tool wrote, nothing else: every
 * folder we write carries a marker listing its top-level entries, and a folder is replaced only
 * when it holds nothing beyond them. An output folder that equals or contains a source folder,
 * or lies inside one, is refused whatever the flags.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { isWithin } from './paths.js';
import { checkFreeSpace } from './space.js';
import { dropTemp, makeTempSibling, sweepTemps } from './temp.js';

/** The marker file (a dot-file: cache keys and folder listings skip it). */
export const OUTPUT_MARKER = '.smash-output.json';

export interface OutputCheck {
  /** folders the command reads: the output may neither contain nor lie inside them */
  sources?: string[];
  force?: boolean;
  /** the option that named the folder, for messages */
  option?: string;
}

/** The entries a marker lists, or undefined when `dir` has no readable marker. */
function markedEntries(dir: string): Set<string> | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, OUTPUT_MARKER), 'utf8')) as { entries?: unknown };
    if (Array.isArray(m.entries) && m.entries.every((e) => typeof e === 'string')) return new Set(m.entries as string[]);
  } catch {
    // no marker, or not ours
  }
  return undefined;
}

/**
 * Checks that `out` may be written (absent or empty) or replaced (`force`, and it holds only an
 * earlier output of ours). Throws a ConfigError naming the option otherwise.
 */
export function checkOutputFolder(out: string, o: OutputCheck = {}): void {
  const option = o.option ?? 'out';
  for (const src of o.sources ?? []) {
    if (isWithin(src, out)) {
      throw new ConfigError('OUT_CONTAINS_SOURCE', `--${option} ${out} is or contains the source ${src}: choose an output folder outside it`, option);
    }
    if (isWithin(out, src)) {
      throw new ConfigError('OUT_INSIDE_SOURCE', `--${option} ${out} is inside the source ${src}: nothing is ever written into the source`, option);
    }
  }
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ConfigError('OUT_NOT_FOLDER', `--${option} ${out} exists and is not a folder`, option);
  const entries = readdirSync(out);
  if (!entries.length) return;
  if (!o.force) throw new ConfigError('OUT_EXISTS', `output folder ${out} exists and is not empty (use --force to replace an earlier output)`, option);
  const ours = markedEntries(out);
  const foreign = entries.filter((e) => e !== OUTPUT_MARKER && !ours?.has(e));
  if (foreign.length) {
    const list = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? `, … (${foreign.length} in all)` : '');
    throw new ConfigError(
      'OUT_NOT_OURS',
      `output folder ${out} holds files smash did not write (${list})${ours ? '' : `, it has no ${OUTPUT_MARKER}`}: --force replaces only an earlier output of smash; remove them yourself or choose another folder`,
      option,
    );
  }
}

/** Writes the marker into a finished output folder (before it is renamed into place). */
export function markOutputFolder(dir: string, command: string): void {
  const entries = readdirSync(dir).filter((e) => e !== OUTPUT_MARKER).sort();
  writeFileSync(join(dir, OUTPUT_MARKER), `${JSON.stringify({ writtenBy: 'smash-diffusion', command, entries }, null, 2)}\n`);
}

/**
 * Writes an output folder as every command of ours does: checked first (checkOutputFolder), the
 * free space checked against `bytes` when given, written into a temporary sibling, marked as ours
 * and renamed into place; on an error (or a sync/async `write` that throws) nothing is left.
 */
export function writeOutputFolder<T>(out: string, o: OutputCheck & { command: string; bytes?: () => number; what?: string }, write: (tmp: string) => T): T {
  checkOutputFolder(out, o);
  const target = resolve(out);
  mkdirSync(dirname(target), { recursive: true });
  sweepTemps(dirname(target));
  if (o.bytes) checkFreeSpace(target, o.bytes(), o.what ?? `${o.command} into ${out}`, o.option);
  const tmp = makeTempSibling(target);
  const commit = <R>(r: R): R => {
    markOutputFolder(tmp, o.command);
    if (existsSync(target)) rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
    dropTemp(tmp, false);
    return r;
  };
  const fail = (e: unknown): never => {
    dropTemp(tmp);
    throw e;
  };
  try {
    const r = write(tmp);
    return (r instanceof Promise ? r.then(commit, fail) : commit(r)) as T;
  } catch (e) {
    return fail(e);
  }
}
