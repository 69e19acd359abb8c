import { Command, CommanderError } from 'commander';
import { SmashError } from '../errors.js';
import { fileError, isSystemError } from '../fs/files.js';
import { guardTempsOnKill } from '../fs/temp.js';
import { registerCache } from './commands/cache.js';
import { registerConvert } from './commands/convert.js';
import { registerCreateRandom } from './commands/create-random.js';
import { registerEval } from './commands/eval.js';
import { registerGenerate } from './commands/generate.js';
import { registerInspect } from './commands/inspect.js';
import { registerOptimize } from './commands/optimize.js';
import { registerTokenize } from './commands/tokenize.js';

/** Builds the `smash` command. Commands are thin: parse, call the library, print. */
export function program(): Command {
  const p = new Command('smash')
    .description('Convert, run and optimize text-to-image diffusion models in Node.js')
    .showHelpAfterError()
    .exitOverride();
  registerInspect(p);
  registerConvert(p);
  registerCreateRandom(p);
  registerGenerate(p);
  registerOptimize(p);
  registerEval(p);
  registerTokenize(p);
  registerCache(p);
  p.addHelpText('after', '\nDiffusers folders given to generate are converted once and cached in $SMASH_CACHE/pipelines\n(default ~/.cache/smash/pipelines): see and clear it with `smash cache list|clear`.');
  return p;
}

/** Runs the CLI; returns the exit code. Errors print as one or two lines, never a stack trace. */
export async function main(argv: string[]): Promise<number> {
  guardTempsOnKill(); // a Ctrl-C during a (synchronous) conversion leaves no temporary folder
  try {
    await program().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof SmashError) {
      process.stderr.write(`smash: ${e.message} [${e.code}]\n`);
      return 1;
    }
    // a file-system error no check anticipated: still one line, naming the path, with a code
    if (isSystemError(e)) {
      const t = fileError(e, e.path ?? '', `cannot ${e.syscall}`);
      process.stderr.write(`smash: ${t.message} [${t.code}]\n`);
      return 1;
    }
    process.stderr.write(`smash: ${((e as Error)?.message ?? String(e)).split('\n')[0]} [INTERNAL_ERROR]\n`);
    if (process.env.SMASH_DEBUG) console.error(e);
    return 2;
  }
}
