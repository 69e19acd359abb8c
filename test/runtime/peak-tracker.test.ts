import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { PeakTracker, peakRssBytes, rssBytes } from '../../src/runtime/memory.js';

const MiB = 2 ** 20;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** RSS grows by `mib` and goes back, synchronously: no timer can sample it (the old tracker's miss) */
function spike(mib: number): void {
  let b: Buffer | undefined = Buffer.alloc(mib * MiB);
  b.fill(1); // touch every page
  b = undefined;
  gc();
}

describe('PeakTracker', { skip: process.platform !== 'linux' && 'VmHWM is Linux\'s' }, () => {
  test('a span below the process\'s earlier peak gets its own exact peak, and the process keeps its peak', () => {
    spike(256); // the process's peak, above anything the span does
    const processPeak = peakRssBytes();
    const before = rssBytes();
    const t = new PeakTracker();
    spike(64);
    const peak = t.stop();
    assert.ok(t.exact, 'the kernel\'s peak could not be reset (/proc/self/clear_refs)');
    // sampled at its ends only, this span measured RSS before + a few MiB
    assert.ok(peak - before >= 60 * MiB, `span peak ${((peak - before) / MiB).toFixed(0)} MiB over RSS before it, expected >= 60`);
    assert.ok(peak < processPeak - 128 * MiB, 'the span reported the process\'s earlier peak');
    assert.ok(peakRssBytes() >= processPeak, 'resetting for the span lowered the process\'s peak');
    assert.equal(t.stop(), peak, 'stop() again gives the same figure');
  });

  test('a span started inside another does not erase the outer span\'s peak', () => {
    spike(256);
    const before = rssBytes();
    const outer = new PeakTracker();
    spike(96);
    const inner = new PeakTracker();
    spike(32);
    const innerPeak = inner.stop();
    const outerPeak = outer.stop();
    assert.ok(outerPeak - before >= 90 * MiB, `outer peak ${((outerPeak - before) / MiB).toFixed(0)} MiB over RSS before it, expected >= 90`);
    assert.ok(innerPeak - before < 80 * MiB, `inner peak ${((innerPeak - before) / MiB).toFixed(0)} MiB includes the outer span's earlier spike`);
    assert.ok(innerPeak - before >= 28 * MiB, `inner peak ${((innerPeak - before) / MiB).toFixed(0)} MiB over RSS before, expected >= 28`);
  });
});
