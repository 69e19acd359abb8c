/**
 * The CLI's relaunch under the allocator settings of `allocatorEnv` (src/runtime/memory.ts):
 * glibc reads them at process start, so a command that runs sessions starts a second Node with
 * them set and waits for it. Where they pay depends on the size of the activations (see
 * ALLOCATOR_ENV): by default for a `--model` folder of at least LARGE_MODEL_BYTES, and wherever
 * the user asks for memory (`--low-memory`, SMASH_MALLOC_ENV=1); SMASH_MALLOC_ENV=0 turns it off.
 * Kept light: bin/smash.js imports it before the rest of the CLI.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { walkFiles } from '../fs/files.js';
import { hubCacheDir, isRepoId, repoCacheDir } from '../hub/download.js';
import { allocatorEnv } from '../runtime/memory.js';

/** Commands that run onnxruntime sessions (the others gain nothing from a relaunch). */
const SESSION_COMMANDS = new Set(['generate', 'eval', 'optimize']);

/**
 * Model folders from this size up run under the settings by default. Measured on either side
 * (README, "Memory"): the benchmark's 1.1–1.4 GiB pipelines at 256×256 ran within ±8% of
 * glibc's defaults (faster in some runs, slower in others), the full-size SD 1.5 (3.85 GiB) at
 * 512×512 in half the CPU time and within its memory bound. Every released SD, SDXL, SD3 and
 * FLUX checkpoint is above it.
 */
export const LARGE_MODEL_BYTES = 2 * 2 ** 30;

/**
 * The bytes of the files in the `--model` folder named by `args`: a local folder, or a Hub id's
 * cached snapshot of `main` (a first run downloads in this process, so it is not measured); 0 when
 * there is none.
 */
export function modelFolderBytes(args: readonly string[], env: NodeJS.ProcessEnv = process.env): number {
  const i = args.findIndex((a) => a === '--model' || a.startsWith('--model='));
  if (i < 0) return 0;
  const model = args[i]!.startsWith('--model=') ? args[i]!.slice('--model='.length) : args[i + 1];
  const dir = model && modelFolder(model, env);
  return dir ? walkFiles(dir).reduce((sum, f) => sum + f.size, 0) : 0;
}

function modelFolder(model: string, env: NodeJS.ProcessEnv): string | undefined {
  if (existsSync(model)) return statSync(model).isDirectory() ? model : undefined;
  if (!isRepoId(model)) return undefined;
  const repo = repoCacheDir(model, hubCacheDir(env));
  const ref = join(repo, 'refs', 'main');
  if (!existsSync(ref)) return undefined;
  const commit = readFileSync(ref, 'utf8').trim();
  const snapshot = join(repo, 'snapshots', commit);
  return /^[0-9a-f]{40}$/.test(commit) && existsSync(snapshot) ? snapshot : undefined;
}

/**
 * Runs `script` again in a new Node process with the allocator settings when `args` name a
 * command that runs sessions on a large model or the user asked for them, and the environment
 * lacks them; resolves to its exit code (a signal that ended it is raised on this process), or
 * undefined when no relaunch is needed.
 */
export function relaunchWithAllocatorEnv(script: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> | undefined {
  const command = args.find((a) => !a.startsWith('-'));
  if (!command || !SESSION_COMMANDS.has(command)) return undefined;
  const extra = allocatorEnv(env);
  if (!extra) return undefined;
  const wanted = env.SMASH_MALLOC_ENV === '1' || args.includes('--low-memory') || modelFolderBytes(args, env) >= LARGE_MODEL_BYTES;
  if (!wanted) return undefined;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: 'inherit', env: { ...env, ...extra } });
    // a terminal's Ctrl-C reaches both processes; a kill aimed at this one is passed on
    const forward = (sig: NodeJS.Signals) => { child.kill(sig); };
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, forward);
      if (signal) process.kill(process.pid, signal);
      resolve(code ?? 1);
    });
  });
}
