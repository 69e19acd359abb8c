import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Node, Value, type Model } from '../../src/ir/graph.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { float16 } from '../../src/ir/passes/float16.js';
import { runPasses } from '../../src/ir/passes/pass.js';
import { topologicalSort } from '../../src/ir/passes/topological-sort.js';
import { uniqueNames } from '../../src/ir/passes/unique-names.js';
import { rulesPass } from '../../src/ir/rewrite.js';
import { identityElimination } from '../../src/ir/rules/identity-elimination.js';
import { transposeFold } from '../../src/ir/rules/transpose-fold.js';
import { buildFluxTransformer2DModel } from '../../src/models/flux-transformer-2d.js';
import { buildSD3Transformer2DModel } from '../../src/models/sd3-transformer-2d.js';
import { buildUNet2DConditionModel } from '../../src/models/unet-2d-condition.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { fixture, readF32, relL2 } from '../helpers.js';

/** One fixture denoiser: how to build it, the reference feeds at one timestep, and the reference output. */
interface Case {
  name: string;
  build(): Model;
  feeds(): Record<string, HostTensor>;
  output: string;
  reference: string;
}

const host = (x: { data: Float32Array; shape: number[] }, dims = x.shape): HostTensor => ({ dtype: 'float32', dims, data: x.data });
const ref = (name: string) => fixture('models', name, 'reference.safetensors');
const load = (name: string, fn: (c: ModelConfig, w: Weights) => { model?: Model }) => {
  const dir = fixture('models', name);
  return fn(ModelConfig.load(dir), new Weights(Checkpoint.open(dir))).model!;
};

const CASES: Case[] = [
  {
    name: 'sd15-unet-tiny',
    build: () => load('sd15-unet-tiny', buildUNet2DConditionModel),
    feeds: () => {
      const r = (k: string) => readF32(ref('sd15-unet-tiny'), `input.${k}`);
      const sample = r('sample');
      return { sample: host(sample), encoder_hidden_states: host(r('encoder_hidden_states')), timestep: { dtype: 'float32', dims: [sample.shape[0]!], data: new Float32Array(sample.shape[0]!).fill(501) } };
    },
    output: 'out_sample',
    reference: 'output.sample.t501',
  },
  {
    name: 'flux-transformer-tiny',
    build: () => load('flux-transformer-tiny', buildFluxTransformer2DModel),
    feeds: () => {
      const r = (k: string) => readF32(ref('flux-transformer-tiny'), `input.${k}`);
      const img = r('img_ids');
      const txt = r('txt_ids');
      return {
        hidden_states: host(r('hidden_states')), encoder_hidden_states: host(r('encoder_hidden_states')),
        pooled_projections: host(r('pooled_projections')), timestep: { dtype: 'float32', dims: [1], data: Float32Array.of(0.5) },
        img_ids: host(img, img.shape.slice(1)), txt_ids: host(txt, txt.shape.slice(1)), guidance: host(r('guidance')),
      };
    },
    output: 'out_hidden_states',
    reference: 'output.sample.t0.5',
  },
  {
    name: 'sd3-transformer-tiny',
    build: () => load('sd3-transformer-tiny', buildSD3Transformer2DModel),
    feeds: () => {
      const r = (k: string) => host(readF32(ref('sd3-transformer-tiny'), `input.${k}`));
      return { hidden_states: r('hidden_states'), encoder_hidden_states: r('encoder_hidden_states'), pooled_projections: r('pooled_projections'), timestep: { dtype: 'float32', dims: [2], data: Float32Array.of(500, 500) } };
    },
    output: 'out_hidden_states',
    reference: 'output.sample.t500',
  },
];

async function run(model: Model, c: Case): Promise<Float32Array> {
  const s = await Session.create(model);
  try {
    const out = (await s.run(c.feeds())).outputs[c.output]!;
    assert.equal(out.dtype, 'float32');
    return out.data as Float32Array;
  } finally {
    await s.release();
  }
}

/**
 * What an exporter leaves behind and the rules must clean up: an Identity after every MatMul and
 * a Transpose pair that cancels after every Softmax (attention scores, rank 4). Returns how many of each.
 */
function clutter(model: Model): { identities: number; transposes: number } {
  const g = model.graph;
  let identities = 0;
  let transposes = 0;
  for (const n of g.nodes()) {
    const out = n.outputs[0];
    if (!out || g.outputs.includes(out)) continue;
    if (n.opType === 'MatMul') {
      const id = new Node('Identity', `${n.name}/Identity`);
      const v = new Value(`${out.name}/identity`, out.dtype, out.shape);
      id.outputs.push(v);
      for (const u of out.useList()) u.node.setInput(u.index, v);
      id.inputs.push(out);
      g.insert(id, n.next);
      identities++;
    } else if (n.opType === 'Softmax') {
      const t1 = new Node('Transpose', `${n.name}/Transpose_a`);
      const t2 = new Node('Transpose', `${n.name}/Transpose_b`);
      t1.attributes.set('perm', { type: 'ints', value: [0, 2, 1, 3] });
      t2.attributes.set('perm', { type: 'ints', value: [0, 2, 1, 3] });
      const a = new Value(`${out.name}/t_a`, out.dtype);
      const b = new Value(`${out.name}/t_b`, out.dtype);
      const uses = out.useList();
      t1.inputs.push(out);
      t1.outputs.push(a);
      t2.inputs.push(a);
      t2.outputs.push(b);
      for (const u of uses) u.node.setInput(u.index, b);
      g.insert(t2, n.next);
      g.insert(t1, t2);
      transposes += 2;
    }
  }
  return { identities, transposes };
}

for (const c of CASES) {
  test(`${c.name}: dead code, topological sort, unique names, the rules and float16 keep the outputs`, async (t) => {
    const want = readF32(ref(c.name), c.reference).data;
    const plain = await run(c.build(), c);
    const base = relL2(plain, want);

    const model = c.build();
    const added = clutter(model);
    assert.ok(added.identities > 0 && added.transposes > 0, `clutter added ${JSON.stringify(added)}`);
    const before = model.graph.nodeCount;
    const rules = rulesPass('rules', [identityElimination, transposeFold]);
    const r = runPasses(model, [deadCodeElimination, topologicalSort, uniqueNames, rules]);
    assert.equal(rules.fired.get('identity-elimination'), added.identities);
    assert.equal(rules.fired.get('transpose-fold'), added.transposes / 2);
    assert.equal(model.graph.nodeCount, before - added.identities - added.transposes);
    // a second run of the sequence finds nothing to do
    assert.deepEqual(runPasses(r.model, [deadCodeElimination, topologicalSort, uniqueNames, rulesPass('rules', [identityElimination, transposeFold])]).changedBy, []);
    const out = await run(r.model, c);
    const err = relL2(out, want);
    t.diagnostic(`${c.name}: passes ${r.changedBy.join(', ')}; relL2 to reference ${err.toExponential(2)} (plain graph ${base.toExponential(2)})`);
    assert.ok(err < 1e-4, `relL2 ${err}`);

    const half = runPasses(r.model, [float16]).model;
    const out16 = await run(half, c);
    const err16 = relL2(out16, plain);
    t.diagnostic(`${c.name}: float16 vs float32 relL2 ${err16.toExponential(2)}`);
    assert.ok(err16 < 1e-2, `float16 relL2 ${err16}`);
  });
}
