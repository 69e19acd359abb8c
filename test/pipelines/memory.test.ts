import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { join } from 'node:path';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { rssBytes } from '../../src/runtime/memory.js';
import { fixture } from '../helpers.js';
import { tempDir } from './fixtures.js';

const tmp = tempDir('memory');
after(() => tmp.cleanup());
const cacheDir = join(tmp.dir, 'cache');
const SD = fixture('pipelines', 'sd15-tiny');
// sd15-tiny's VAE downsamples by 2 only: at 64×64 the UNet attends over 1024 latent positions,
// and with unfused attention one generation's activations (~150 MiB under onnxruntime's arena,
// mostly 32 MiB score tensors: 2 × 4 heads × 1024² float32) dwarf its weights (~8 MiB)
const OPTS = { prompt: 'a red fox', steps: 2, width: 64, height: 64, seed: 3 };
const MiB = 2 ** 20;

describe('memory between stages', () => {
  /** the unfused pipeline's pictures, which the fused default must reproduce */
  let unfused: Float32Array | undefined;

  test('RSS after a generation returns to within 40 MiB of RSS after loading (the old defaults kept 78 MiB in the arena)', async () => {
    // unfused attention: the score tensors are the activations the arena would keep
    const pipe = await loadPipeline(SD, { cacheDir, fuseAttention: false });
    try {
      // first-run allocations of onnxruntime and V8 happen here, at a quarter of the size, so that
      // what the measured generation leaves behind is its own (stage peaks are exact: PeakTracker)
      await pipe.generate({ ...OPTS, steps: 1, width: 32, height: 32 });
      const before = rssBytes();
      const r = await pipe.generate(OPTS);
      const grown = rssBytes() - before;
      assert.ok(grown < 40 * MiB, `RSS grew by ${(grown / MiB).toFixed(0)} MiB across a generation`);
      // the stages' peaks are reported, and the denoiser's activations show in its stage
      const p = r.timings.peakRssBytes;
      for (const k of ['textEncode', 'denoise', 'decode'] as const) assert.ok(p[k] >= before - 64 * MiB, `${k} peak ${p[k]}`);
      assert.ok(p.denoise > p.textEncode, `denoise peak ${p.denoise} <= text encode peak ${p.textEncode}`);
      unfused = r.images.data as Float32Array;
    } finally {
      await pipe.release();
    }
  });

  test('attention is fused by default: no score tensor in the denoiser\'s peak, pictures within 1e-4 of unfused attention', async () => {
    const pipe = await loadPipeline(SD, { cacheDir });
    try {
      await pipe.generate({ ...OPTS, steps: 1 }); // first-run allocations of onnxruntime and V8
      const before = rssBytes();
      const r = await pipe.generate(OPTS);
      // one unfused score tensor alone is 32 MiB; the fused denoiser measured 7-12 MiB over it
      const over = r.timings.peakRssBytes.denoise - before;
      assert.ok(over < 24 * MiB, `the denoiser's peak is ${(over / MiB).toFixed(0)} MiB over RSS before the generation`);
      assert.ok(unfused, 'the unfused pictures (previous test)');
      let worst = 0;
      r.images.data.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - unfused![i]!)); });
      assert.ok(worst < 1e-4, `max |fused − unfused| = ${worst}`);
    } finally {
      await pipe.release();
    }
  });

  test('lowMemory: sessions exist only during their stage, and the pictures are the same', async () => {
    const normal = await loadPipeline(SD, { cacheDir });
    const low = await loadPipeline(SD, { cacheDir, lowMemory: true });
    try {
      const sessions = (low as unknown as { sessions: { loaded: boolean }[] }).sessions;
      assert.equal(sessions.length, 3);
      assert.ok(sessions.every((s) => !s.loaded), 'sessions loaded after loadPipeline');
      const seen: boolean[][] = [];
      const a = await normal.generate(OPTS);
      const b = await low.generate({ ...OPTS, onStep: () => { seen.push(sessions.map((s) => s.loaded)); } });
      // during denoising only the denoiser (the first session) is loaded
      for (const s of seen) assert.deepEqual(s, [true, false, false]);
      assert.ok(sessions.every((s) => !s.loaded), 'sessions loaded after generate');
      assert.deepEqual(b.images.data, a.images.data);
      // and again: sessions are created anew
      const c = await low.generate(OPTS);
      assert.deepEqual(c.images.data, a.images.data);
    } finally {
      await Promise.all([normal.release(), low.release()]);
    }
  });
});
