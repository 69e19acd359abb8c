// GenerationTracker: tells the stateful denoiser when the kept tensors stop being valid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GenerationTracker } from '../../../src/algorithms/cachers/policies/index.js';

test('GenerationTracker: changed on first use and on any of batch, height, width, steps', () => {
  const t = new GenerationTracker();
  const sig = { batch: 1, height: 64, width: 64, steps: 28 };
  assert.equal(t.changed(sig), true);
  assert.equal(t.changed({ ...sig }), false);
  for (const k of ['batch', 'height', 'width', 'steps'] as const) {
    assert.equal(t.changed({ ...sig, [k]: sig[k] + 1 }), true, k);
    assert.equal(t.changed(sig), true, `${k} back`);
    assert.equal(t.changed(sig), false, `${k} same`);
  }
  // the tracker copies the signature: mutating the caller's object later changes nothing
  const mutable = { ...sig };
  t.changed(mutable);
  mutable.steps = 50;
  assert.equal(t.changed(sig), false);
  t.reset();
  assert.equal(t.changed(sig), true);
});
