import { main } from '../../src/cli/main.js';

/**
 * Runs the CLI in-process, capturing what it writes as text. Binary writes pass through: they
 * are the test runner's own (serialized) reports, which a long-running command would swallow.
 */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const ow = process.stdout.write.bind(process.stdout);
  const ew = process.stderr.write.bind(process.stderr);
  const capture = (sink: string[], orig: typeof process.stdout.write) =>
    ((s: string | Uint8Array, ...rest: unknown[]) => (typeof s === 'string' ? (sink.push(s), true) : (orig as (...a: unknown[]) => boolean)(s, ...rest))) as typeof process.stdout.write;
  process.stdout.write = capture(out, ow);
  process.stderr.write = capture(err, ew);
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}
