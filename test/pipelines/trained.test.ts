import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile, metadata, tempDir } from './fixtures.js';

// The trained shapes pipelines against their whole-pipeline references (default schedulers).
const tmp = tempDir('trained');
after(() => tmp.cleanup());

for (const [name, folder] of [
  ['e2e_shapes_sd_yellow_square', 'shapes-sd'],
  ['e2e_shapes_flux_red_circle', 'shapes-flux'],
] as const) {
  test(`${name} (trained/${folder})`, async () => {
    const p = await loadPipeline(fixture('trained', folder), { cacheDir: join(tmp.dir, 'cache'), threads: 1 });
    try {
      const opts = e2eOptions(name);
      const r = await p.generate(opts);
      const e = relL2(r.images.data, readF32(loopFile(name), 'output.image').data);
      assert.ok(e < 1e-3, `output.image relL2 ${e}`);
      assert.equal(r.timings.stepsMs.length, opts.steps);
      const mu = metadata(name).mu;
      if (mu) assert.ok(Math.abs(r.settings.mu! - Number(mu)) < 1e-12);
    } finally {
      await p.release();
    }
  });
}
