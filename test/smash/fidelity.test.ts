// Fidelity of the quantizers on the trained pipelines (real weights whose features behave as real
// models' do): the smashed picture against the unsmashed one, same prompt and seed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { psnrDb } from '../../src/eval/metrics.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { smash } from '../../src/smash/smash.js';
import { fixture } from '../helpers.js';
import { tempDir } from '../pipelines/fixtures.js';

const tmp = tempDir('fidelity');
after(() => tmp.cleanup());

/** Prompts of the trained pipelines' caption grammar (test/fixtures/README.md). */
const PROMPTS = [
  'a large red circle at the center on a blue background',
  'a small green triangle at the top on a black background',
  'a large yellow square at the left on a gray background',
  'a small white circle at the right on a green background',
];

const SETTINGS = {
  'shapes-flux': { steps: 28, maxSequenceLength: 32, width: 32, height: 32 },
  'shapes-sd': { steps: 25, guidanceScale: 7.5, width: 32, height: 32 },
} as const;

for (const name of ['shapes-flux', 'shapes-sd'] as const) {
  test(`${name}: int8Dynamic with default excludes keeps PSNR ≥ 35 dB against the unquantized pictures`, async () => {
    const base = await loadPipeline(fixture('trained', name), { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
    const q = await smash(base, { int8Dynamic: {} }, { threads: 1 });
    const psnr: number[] = [];
    for (const [i, prompt] of PROMPTS.entries()) {
      const a = await base.generate({ prompt, seed: i, ...SETTINGS[name] });
      const b = await q.generate({ prompt, seed: i, ...SETTINGS[name] });
      psnr.push(psnrDb(b.images.data, a.images.data));
    }
    await base.release();
    await q.release();
    const mean = psnr.reduce((s, x) => s + x, 0) / psnr.length;
    console.log(`${name} int8Dynamic: PSNR mean ${mean.toFixed(1)} dB, min ${Math.min(...psnr).toFixed(1)} dB over ${psnr.length} prompts`);
    assert.ok(Math.min(...psnr) >= 35, `PSNR ${psnr.map((x) => x.toFixed(1)).join(', ')}`);
  });
}
