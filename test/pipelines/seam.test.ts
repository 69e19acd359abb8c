// The denoiser seam and load-time transforms: a stateful pass-through wrapper that stores a cut
// tensor every step and feeds it back gives the unwrapped pipeline's image; cfgMode 'split'
// gives the batched image; constant feeds are adapted once per generation.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { ModelFormatError } from '../../src/errors.js';
import { Model, Node, Value } from '../../src/ir/graph.js';
import type { HostTensor, OrtTensor } from '../../src/runtime/session.js';
import { loadPipeline, type LoadPipelineOptions, type Pipeline } from '../../src/pipelines/loader.js';
import {
  SessionDenoiser, StatefulDenoiser,
  type DenoiseContext, type DenoiserFeeds, type GenerationSignature, type Prediction, type PredictRequest,
} from '../../src/pipelines/denoiser.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable-diffusion.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { e2eOptions, loopFile, tempDir } from './fixtures.js';

const tmp = tempDir('seam');
const cacheDir = join(tmp.dir, 'cache');
const load = (name: string, opts: LoadPipelineOptions = {}) => loadPipeline(fixture('pipelines', name), { cacheDir, threads: 1, ...opts });

/** The denoiser's cut: the last `Add` under `prefix` (an internal value, e.g. the end of the UNet's mid block). */
const CUT_PREFIX: Record<string, string> = { unet: '/mid_block/', transformer: '/transformer_blocks.0/' };

/**
 * Exposes an internal value of the denoiser as the graph output `cut` and gates it by a state
 * input: cut = Where(use_cache, cut_state, computed), read by everything that read `computed`.
 * (What a cacher's If-region does, reduced to a Where so that the state input is really used.)
 */
function gateCut(component: string, model: Model): Model {
  const prefix = CUT_PREFIX[component];
  if (!prefix) return model;
  const g = model.graph;
  const node = g.nodeList().filter((n) => n.opType === 'Add' && n.name.startsWith(prefix)).at(-1);
  assert.ok(node?.next, `no Add under ${prefix}`);
  const computed = node.outputs[0]!;
  const state = new Value('cut_state', 'float32'); // any shape that broadcasts: [1] before the first store
  const useCache = new Value('use_cache', 'bool', []);
  g.inputs.push(state, useCache);
  const cut = new Value('cut', 'float32');
  g.replaceAllUses(computed, cut);
  const where = new Node('Where', '/cut/Where');
  where.inputs.push(useCache, state, computed);
  where.outputs.push(cut);
  g.insert(where, node.next);
  g.outputs.push(cut);
  return model;
}

const bool = (v: boolean): HostTensor => ({ dtype: 'bool', dims: [], data: Uint8Array.of(v ? 1 : 0) });
const NOTHING: HostTensor = { dtype: 'float32', dims: [1], data: new Float32Array(1) };

interface CutState {
  cut?: OrtTensor;
  stores: number;
}

/** Stores the cut every step (kept as ORT holds it) and feeds it back; reuses it where `reuse` says so. */
class PassThroughCache extends StatefulDenoiser<CutState> {
  made: { branch: string; signature: GenerationSignature }[] = [];
  /** every branch's state as it was left, per generation */
  states: CutState[] = [];
  constructor(inner: SessionDenoiser, readonly reuse: (ctx: DenoiseContext) => boolean = () => false) {
    super(inner);
  }
  protected initialState(ctx: DenoiseContext): CutState {
    this.made.push({ branch: ctx.branch, signature: ctx.signature });
    const s: CutState = { stores: 0 };
    this.states.push(s);
    return s;
  }
  /** the state of a context, for tests of the signature check */
  stateOf(ctx: DenoiseContext): CutState {
    return this.state(ctx);
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const s = this.state(ctx);
    const useCache = s.cut !== undefined && this.reuse(ctx);
    const r = await this.inner.predict({ ...feeds, cut_state: s.cut ?? NOTHING, use_cache: bool(useCache) }, ctx, {
      outputs: ['cut', ...(request.outputs ?? [])],
      keep: ['cut', ...(request.keep ?? [])],
    });
    s.cut = r.outputs.cut as OrtTensor;
    s.stores++;
    return r;
  }
}

const image = (name: string) => readF32(loopFile(name), 'output.image').data;

for (const [pipeline, fx, component] of [['sd15-tiny', 'e2e_sd15_tiny_cat', 'unet'], ['flux-tiny', 'e2e_flux_tiny_fox', 'transformer']] as const) {
  describe(`${fx}: a stateful pass-through wrapper on a transformed ${component}`, () => {
    let plain: Pipeline;
    let gated: Pipeline;
    const transformed: string[] = [];
    before(async () => {
      plain = await load(pipeline);
      gated = await load(pipeline, {
        transform: (c, m) => {
          transformed.push(c);
          return gateCut(c, m);
        },
      });
    });
    after(async () => {
      await plain?.release();
      await gated?.release();
    });

    test('transform is called once per component, and the graph it returns is what runs', () => {
      const expected = component === 'unet' ? ['unet', 'vae_decoder', 'text_encoder'] : ['transformer', 'vae_decoder', 'text_encoder', 'text_encoder_2'];
      assert.deepEqual(transformed, expected);
      const inner = gated.denoiser as SessionDenoiser;
      assert.ok(inner.inputNames.includes('cut_state') && inner.inputNames.includes('use_cache'));
      assert.ok(inner.outputNames.includes('cut'));
    });

    test('always compute: the wrapped image is the unwrapped one within 1e-6, and the reference within 1e-3', async (t) => {
      const inner = gated.denoiser as SessionDenoiser;
      const wrapper = new PassThroughCache(inner);
      gated.denoiser = wrapper;
      try {
        const want = await plain.generate(e2eOptions(fx));
        const got = await gated.generate(e2eOptions(fx));
        const e = relL2(got.images.data, want.images.data);
        t.diagnostic(`wrapped vs unwrapped relL2 ${e}`);
        assert.ok(e < 1e-6, `wrapped vs unwrapped relL2 ${e}`);
        assert.ok(relL2(got.images.data, image(fx)) < 1e-3);
        const T = got.timings.stepsMs.length;
        const branch = component === 'unet' ? 'cfg' : 'cond';
        assert.deepEqual(wrapper.made.map((m) => m.branch), [branch]);
        assert.equal(wrapper.states[0]!.stores, T, 'a cut stored every step');
        assert.equal(wrapper.resets, 1);
      } finally {
        gated.denoiser = inner;
      }
    });

    test('reusing the stored cut on odd steps changes the image (the state input is live)', async () => {
      const inner = gated.denoiser as SessionDenoiser;
      gated.denoiser = new PassThroughCache(inner, (ctx) => ctx.stepIndex % 2 === 1);
      try {
        const want = await plain.generate(e2eOptions(fx));
        const got = await gated.generate(e2eOptions(fx));
        const e = relL2(got.images.data, want.images.data);
        assert.ok(e > 1e-4, `reuse left the image unchanged (relL2 ${e})`);
      } finally {
        gated.denoiser = inner;
      }
    });

    test('constant feeds are adapted once per generation, step feeds once per call', async () => {
      const session = (plain.denoiser as SessionDenoiser).session;
      const before = session.adaptations;
      const r = await plain.generate(e2eOptions(fx));
      const T = r.timings.stepsMs.length;
      const constants = component === 'unet' ? 1 : 4 + (session.inputNames.includes('guidance') ? 1 : 0);
      assert.equal(session.adaptations - before, constants + 2 * T);
    });
  });
}

describe('SD guidance branches and the generation signature', () => {
  let gated: StableDiffusionPipeline;
  before(async () => {
    const p = await load('sd15-tiny', { transform: gateCut });
    assert.ok(p instanceof StableDiffusionPipeline);
    gated = p;
  });
  after(async () => gated?.release());

  test("cfgMode 'split' runs cond then uncond, keeps state per branch, and gives the batched image within 1e-5", async (t) => {
    const inner = gated.denoiser as SessionDenoiser;
    const wrapper = new PassThroughCache(inner);
    gated.denoiser = wrapper;
    try {
      const batched = await gated.generate(e2eOptions('e2e_sd15_tiny_cat'));
      const runs = inner.runs;
      const split = await gated.generate({ ...e2eOptions('e2e_sd15_tiny_cat'), cfgMode: 'split' });
      const T = split.timings.stepsMs.length;
      assert.equal(inner.runs - runs, 2 * T);
      assert.equal(split.settings.cfgMode, 'split');
      assert.equal(batched.settings.cfgMode, 'batched');
      const e = relL2(split.images.data, batched.images.data);
      t.diagnostic(`split vs batched relL2 ${e}`);
      assert.ok(e < 1e-5, `split vs batched relL2 ${e}`);
      assert.deepEqual(wrapper.made.map((m) => m.branch), ['cfg', 'cond', 'uncond']);
      assert.deepEqual(wrapper.states.map((s) => s.stores), [T, T, T]);
      // the pipeline-level default
      gated.cfgMode = 'split';
      const again = await gated.generate(e2eOptions('e2e_sd15_tiny_cat'));
      assert.equal(again.settings.cfgMode, 'split');
      assert.deepEqual(again.images.data, split.images.data);
    } finally {
      gated.denoiser = inner;
      gated.cfgMode = 'batched';
    }
  });

  test('state is dropped on every generate() and when batch, size or steps change', async () => {
    const inner = gated.denoiser as SessionDenoiser;
    const wrapper = new PassThroughCache(inner);
    gated.denoiser = wrapper;
    try {
      const base = { prompt: 'a cat', width: 32, height: 32, steps: 2, seed: 1 };
      await gated.generate(base);
      await gated.generate(base);
      await gated.generate({ ...base, width: 64 });
      await gated.generate({ ...base, steps: 3 });
      await gated.generate({ ...base, prompt: ['a cat', 'a dog'] });
      assert.equal(wrapper.resets, 5);
      const sigs = wrapper.made.map((m) => m.signature);
      assert.deepEqual(sigs.map((s) => [s.batch, s.width, s.height, s.steps]), [[1, 32, 32, 3], [1, 32, 32, 3], [1, 64, 32, 3], [1, 32, 32, 4], [2, 32, 32, 3]]);
      assert.ok(wrapper.states.every((s) => s.stores > 0 && s.cut !== undefined));
      // a call whose signature differs from the last reset's starts from fresh state
      const last = wrapper.made.at(-1)!;
      const ctx: DenoiseContext = { stepIndex: 0, numSteps: 3, timestep: 1, sigma: undefined, branch: 'cfg', signature: last.signature };
      const kept = wrapper.stateOf(ctx);
      assert.ok(kept.cut !== undefined);
      const other = wrapper.stateOf({ ...ctx, signature: { ...last.signature, height: 64 } });
      assert.equal(other.cut, undefined);
      assert.equal(wrapper.resets, 6);
    } finally {
      gated.denoiser = inner;
    }
  });

  test('the loop gives the wrapper the step index, timestep and sigma', async () => {
    const inner = gated.denoiser as SessionDenoiser;
    const seen: DenoiseContext[] = [];
    const wrapper = new PassThroughCache(inner, (ctx) => {
      seen.push(ctx);
      return false;
    });
    gated.denoiser = wrapper;
    try {
      const r = await gated.generate({ prompt: 'a cat', width: 32, height: 32, steps: 3, seed: 1, scheduler: 'EulerDiscreteScheduler' });
      // step 0 has nothing stored: the policy is asked from step 1
      assert.deepEqual(seen.map((c) => c.stepIndex), [1, 2]);
      assert.deepEqual(seen.map((c) => c.timestep), r.settings.timesteps.slice(1));
      assert.ok(seen.every((c) => typeof c.sigma === 'number' && c.sigma > 0 && c.numSteps === 3));
      assert.ok(seen[0]!.sigma! > seen[1]!.sigma!);
    } finally {
      gated.denoiser = inner;
    }
  });
});

test('a transform that drops an input the pipeline feeds fails at load, naming the input', async () => {
  await assert.rejects(
    load('sd15-tiny', {
      transform: (c, m) => {
        if (c === 'vae_decoder') m.graph.inputs[0]!.name = 'z';
        return m;
      },
    }),
    (e: unknown) => e instanceof ModelFormatError && e.code === 'COMPONENT_IO' && /latent_sample/.test(e.message),
  );
});

after(() => tmp.cleanup());
