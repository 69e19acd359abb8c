/**
 * The CLI's relaunch under the allocator settings of `allocatorEnv` (src/runtime/memory.ts):
 * glibc reads them at process start, so a command that runs sessions starts a second Node with
 * them set and waits for it. They trade speed for memory (see ALLOCATOR_ENV), so only where the
 * user asked for memory: `--low-memory`, or SMASH_MALLOC_ENV=1. Kept light: bin/smash.js imports
 * it before the rest of the CLI.
 */
import { spawn } from 'node:child_process';
import { allocatorEnv } from '../runtime/memory.js';

/** Commands that run onnxruntime sessions (the others gain nothing from a relaunch). */
const SESSION_COMMANDS = new Set(['generate', 'eval', 'optimize']);

/**
 * Runs `script` again in a new Node process with the allocator settings when `args` name a
 * command that runs sessions, the user asked for them and the environment lacks them; resolves to its exit code (a signal
 * that ended it is raised on this process), or undefined when no relaunch is needed.
 */
export function relaunchWithAllocatorEnv(script: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> | undefined {
  const command = args.find((a) => !a.startsWith('-'));
  const wanted = env.SMASH_MALLOC_ENV === '1' || args.includes('--low-memory');
  const extra = wanted && command && SESSION_COMMANDS.has(command) ? allocatorEnv(env) : undefined;
  if (!extra) return undefined;
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
