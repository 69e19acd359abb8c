/**
 * Temporary output folders: a hidden sibling of the final folder, renamed into place when
 * complete. Their names carry the writing process's id (`.<name>.tmp-<pid>-<ms>`), so that a
 * later run can tell an abandoned one (its process is gone: killed, or interrupted) from one a
 * concurrent process is still writing, and remove it. This process removes its own on error,
 * on exit and on SIGINT/SIGTERM (see cleanupTemps).
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const TEMP = /^\..+\.tmp-(\d+)-\d+$/;
const live = new Set<string>();
let hooked = false;

/** Removes every temporary folder this process still holds (synchronous: safe in 'exit'). */
export function cleanupTemps(): void {
  for (const d of live) rmSync(d, { recursive: true, force: true });
  live.clear();
}

/** Creates and registers a temporary sibling folder of `target`. */
export function makeTempSibling(target: string): string {
  const abs = resolve(target);
  const tmp = join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  live.add(tmp);
  if (!hooked) {
    hooked = true;
    process.on('exit', cleanupTemps);
  }
  return tmp;
}

/** Removes a temporary folder (after an error) and forgets it; after a rename, only forgets it. */
export function dropTemp(tmp: string, remove = true): void {
  if (remove) rmSync(tmp, { recursive: true, force: true });
  live.delete(tmp);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes abandoned temporary folders in `dir` (ours from processes that no longer run). Returns
 * the names removed. A folder of a running process is left alone.
 */
export function sweepTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP.exec(n);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(dir, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}
