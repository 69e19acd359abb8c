// Run in a child process by bundle.test.ts: loads a pipeline folder (a smashed bundle) in a fresh
// process, generates the e2e fixture's picture and writes its raw float32 bytes to a file.
import { writeFileSync } from 'node:fs';
import { loadPipeline } from '../../src/smash/smash.js';
import { e2eOptions } from '../pipelines/fixtures.js';

const [dir, fx, out] = process.argv.slice(2) as [string, string, string];
const pipe = await loadPipeline(dir, { threads: 1 });
if (!('smashConfig' in pipe)) throw new Error(`${dir} did not load as a smashed bundle`);
const r = await pipe.generate(e2eOptions(fx));
writeFileSync(out, new Uint8Array(r.images.data.buffer, r.images.data.byteOffset, r.images.data.byteLength));
await pipe.release();
