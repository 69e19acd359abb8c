// The pieces cachers are made of, together on the fixture pipelines: block records find the
// blocks, a region puts them behind an ONNX `If` (weights inside the branch), and a stateful
// wrapper keeps the If's outputs each step and feeds them back as the else-branch's values.
// Always computing gives the plain pipeline's image; reusing on some steps changes it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import type { Model } from '../../src/ir/graph.js';
import { readBlocks } from '../../src/ir/blocks.js';
import { selectNodes } from '../../src/ir/modules.js';
import { convexHull, gateRegion, newInputs } from '../../src/ir/region.js';
import type { HostTensor, OrtTensor } from '../../src/runtime/session.js';
import { loadPipeline, type Pipeline } from '../../src/pipelines/loader.js';
import { StatefulDenoiser, type Denoiser, type DenoiseContext, type DenoiserFeeds, type Prediction, type PredictRequest } from '../../src/pipelines/denoiser.js';
import { fixture, relL2 } from '../helpers.js';
import { e2eOptions, tempDir } from './fixtures.js';

const tmp = tempDir('region-cache');
after(() => tmp.cleanup());

/** Which blocks each denoiser gates, and the rank of the values that escape them. */
const GATED: Record<string, { blocks: (name: string, index: number, pattern: string) => boolean; rank: number }> = {
  // first-block-cache layout: everything after the first double block
  transformer: { blocks: (_n, i, p) => p === 'single_transformer_blocks.*' || (p === 'transformer_blocks.*' && i > 0), rank: 3 },
  // DeepCache-like: the deepest part of the UNet
  unet: { blocks: (n) => n === 'mid_block', rank: 4 },
};

let escapingCount = 0;

function gateBlocks(component: string, model: Model): Model {
  const spec = GATED[component];
  if (!spec) return model;
  const blocks = readBlocks(model);
  assert.ok(blocks?.length, `${component} has block records`);
  const names = blocks.filter((b) => spec.blocks(b.name, b.index, b.pattern)).map((b) => b.name);
  assert.ok(names.length > 0);
  const g = model.graph;
  const region = gateRegion(g, convexHull(g, selectNodes(g, { include: names })), {
    cond: 'compute_blocks',
    replacement: newInputs(g, (_v, i) => `cached.${i}`, () => Array(spec.rank).fill(null)),
    expose: (_v, i) => `cut.${i}`,
  });
  escapingCount = region.escaping.length;
  // the gated blocks' weights sit in the branch only: nothing is held twice
  for (const k of region.movedInitializers) assert.ok(!g.initializers.has(k), k);
  assert.ok(region.movedInitializers.length > 0);
  return model;
}

const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });

/** Keeps the cut tensors per branch; computes unless `reuse` says to feed them back instead. */
class BlockCache extends StatefulDenoiser<{ cuts?: OrtTensor[] }> {
  reused = 0;
  constructor(inner: Denoiser, readonly count: number, readonly rank: number, readonly reuse: (ctx: DenoiseContext) => boolean) {
    super(inner);
  }
  protected initialState() {
    return {};
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const s = this.state(ctx);
    const reuse = !!s.cuts && this.reuse(ctx);
    if (reuse) this.reused++;
    const cached: DenoiserFeeds = {};
    const cut = Array.from({ length: this.count }, (_, i) => `cut.${i}`);
    for (let i = 0; i < this.count; i++) {
      cached[`cached.${i}`] = s.cuts?.[i] ?? { dtype: 'float32', dims: Array(this.rank).fill(1), data: new Float32Array(1) };
    }
    const r = await this.inner.predict({ ...feeds, ...cached, compute_blocks: bool(!reuse) }, ctx, {
      outputs: [...cut, ...(request.outputs ?? [])],
      keep: [...cut, ...(request.keep ?? [])],
    });
    s.cuts = cut.map((k) => r.outputs[k] as OrtTensor);
    return r;
  }
}

for (const [pipeline, fx, component] of [['flux-tiny', 'e2e_flux_tiny_fox', 'transformer'], ['sd15-tiny', 'e2e_sd15_tiny_cat', 'unet']] as const) {
  describe(`${pipeline}: ${component} blocks behind an If, driven by a stateful wrapper`, () => {
    let plain: Pipeline;
    let gated: Pipeline;
    let count = 0;
    before(async () => {
      const cacheDir = join(tmp.dir, 'cache');
      plain = await loadPipeline(fixture('pipelines', pipeline), { cacheDir, threads: 1 });
      gated = await loadPipeline(fixture('pipelines', pipeline), { cacheDir, threads: 1, transform: gateBlocks });
      count = escapingCount;
    });
    after(async () => {
      await plain?.release();
      await gated?.release();
    });

    test('always compute: the image of the plain pipeline within 1e-6, the same on a second run', async () => {
      const base = await plain.generate(e2eOptions(fx));
      const inner = gated.denoiser;
      const cache = new BlockCache(inner, count, GATED[component]!.rank, () => false);
      gated.denoiser = cache;
      try {
        const a = await gated.generate(e2eOptions(fx));
        const b = await gated.generate(e2eOptions(fx));
        const err = relL2(a.images.data, base.images.data);
        console.log(`${pipeline}: gated + wrapper, always compute: relL2 ${err.toExponential(2)} (${count} cut tensors)`);
        assert.ok(err < 1e-6, `relL2 ${err}`);
        assert.deepEqual(b.images.data, a.images.data);
        assert.equal(cache.reused, 0);
      } finally {
        gated.denoiser = inner;
      }
    });

    test('reusing the kept tensors on odd steps really skips the blocks: the image changes', async () => {
      const base = await plain.generate(e2eOptions(fx));
      const inner = gated.denoiser;
      const cache = new BlockCache(inner, count, GATED[component]!.rank, (ctx) => ctx.stepIndex % 2 === 1);
      gated.denoiser = cache;
      try {
        const r = await gated.generate(e2eOptions(fx));
        assert.ok(cache.reused > 0);
        assert.ok(relL2(r.images.data, base.images.data) > 1e-4);
      } finally {
        gated.denoiser = inner;
      }
    });
  });
}
