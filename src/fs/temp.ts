/**
 * Temporary output folders: a hidden sibling of the final folder, renamed into place when
 * complete. Their names carry the writing process's id (`.<name>.tmp-<pid>-<ms>`), so that a
 * later run can tell an abandoned one (its process is gone: killed, or interrupted) from one a
 * concurrent process is still writing, and remove it. This process removes its own on error and
 * on exit. Conversion is synchronous, so no signal handler can run while it works: with
 * `guardTempsOnKill()` (the CLI turns it on) a small detached watcher removes the folder as soon
 * as this process dies (Ctrl-C, SIGTERM, even SIGKILL) and quits once the folder is gone.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const TEMP = /^\..+\.tmp-(\d+)-\d+$/;
const live = new Set<string>();
let hooked = false;
let guard = false;

/** Watches a folder for a process: removes it when the process has died, quits when it is gone. */
const WATCHER = `
const fs = require('node:fs');
const [pid, dir] = process.argv.slice(1);
const t = setInterval(() => {
  if (!fs.existsSync(dir)) return clearInterval(t);
  try { process.kill(Number(pid), 0); } catch (e) {
    if (e.code === 'ESRCH') { fs.rmSync(dir, { recursive: true, force: true }); clearInterval(t); }
  }
}, 200);`;

/** Turns on the watcher for temporary folders made from now on (for processes that may be killed mid-write). */
export function guardTempsOnKill(on = true): void {
  guard = on;
}

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
  if (guard) {
    try {
      spawn(process.execPath, ['-e', WATCHER, String(process.pid), tmp], { detached: true, stdio: 'ignore' }).unref();
    } catch {
      // no watcher: the next run sweeps the folder instead
    }
  }
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
