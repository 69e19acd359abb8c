// Graphs we did not build — the fixture pipelines as PyTorch's exporter writes them — get the
// same module paths, glob selections and block records as our own graphs of the same
// checkpoints, and the pass sequence leaves their outputs unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveBlocks } from '../../src/ir/blocks.js';
import type { Model } from '../../src/ir/graph.js';
import { loadModel } from '../../src/ir/model-file.js';
import { modulePath, NAME_SCOPES_KEY, selectNodes } from '../../src/ir/modules.js';
import { deadCodeElimination } from '../../src/ir/passes/dead-code-elimination.js';
import { runPasses } from '../../src/ir/passes/pass.js';
import { topologicalSort } from '../../src/ir/passes/topological-sort.js';
import { uniqueNames } from '../../src/ir/passes/unique-names.js';
import { rulesPass } from '../../src/ir/rewrite.js';
import { identityElimination } from '../../src/ir/rules/identity-elimination.js';
import { transposeFold } from '../../src/ir/rules/transpose-fold.js';
import { blockPatternsFor, BLOCK_PATTERNS } from '../../src/models/block-patterns.js';
import { buildComponent } from '../../src/models/convert.js';
import { Session, type HostTensor } from '../../src/runtime/session.js';
import { fixture, relL2 } from '../helpers.js';

const exported = (pipeline: string, component: string) => loadModel(fixture('torch-export', pipeline, component, 'model.onnx'));
const built = (pipeline: string, component: string) => buildComponent(fixture('pipelines', pipeline, component)).model!;

const CASES = [
  { pipeline: 'sd15-tiny', component: 'unet', cls: 'UNet2DConditionModel', globs: ['*attn1.to_q', 'down_blocks.*.resnets.*.conv1', '*norm*', 'mid_block', 'time_embedding*'] },
  { pipeline: 'flux-tiny', component: 'transformer', cls: 'FluxTransformer2DModel', globs: ['transformer_blocks.*.attn', 'single_transformer_blocks.*.proj_mlp', 'x_embedder', '*norm*', 'proj_out'] },
] as const;

/** The set of module paths that a glob selects among the nodes of a graph (ops differ between exporters, modules do not). */
const selected = (m: Model, glob: string) => new Set(selectNodes(m.graph, { include: [glob] }).map(modulePath).filter(Boolean));

for (const c of CASES) {
  test(`${c.pipeline} ${c.component} from PyTorch's exporter: module paths from node names, globs select the modules they select on our graph`, () => {
    const ext = exported(c.pipeline, c.component);
    const ours = built(c.pipeline, c.component);
    assert.ok(ext.graph.nodeList().every((n) => !n.metadata.has(NAME_SCOPES_KEY)), 'the export carries no module metadata: paths come from names');
    for (const glob of c.globs) {
      const a = selected(ext, glob);
      const b = selected(ours, glob);
      assert.ok(a.size > 0, `${glob} selects something in the export`);
      // every module the glob reaches in our graph holds nodes in the export too (the export may have more sub-scopes)
      const missing = [...b].filter((p) => ![...a].some((q) => q === p || q.startsWith(`${p}.`) || p.startsWith(`${q}.`)));
      assert.deepEqual(missing, [], `${glob}: modules selected in our graph but not in the export`);
    }
  });

  test(`${c.pipeline} ${c.component} from PyTorch's exporter: block records are derived, the same blocks as ours, each stream passing from block to block`, () => {
    const ext = exported(c.pipeline, c.component);
    const ours = built(c.pipeline, c.component);
    const patterns = blockPatternsFor(ext);
    assert.deepEqual(new Set(patterns), new Set(BLOCK_PATTERNS[c.cls]), 'patterns found without the class name');
    const a = deriveBlocks(ext, patterns);
    const b = deriveBlocks(ours, BLOCK_PATTERNS[c.cls]!);
    assert.deepEqual(a.map((r) => r.name), b.map((r) => r.name));
    // the exporter shares identical computations between blocks (the SiLU of the time embedding
    // made once in the first resnet), so an exported block can have more outputs than ours, never fewer
    for (let i = 0; i < a.length; i++) assert.ok(a[i]!.outputs.length >= b[i]!.outputs.length && b[i]!.outputs.length > 0, a[i]!.name);
    for (const records of [a, b]) {
      const top = records.filter((r) => /^(transformer_blocks|single_transformer_blocks|down_blocks)\.\d+$/.test(r.name));
      for (let i = 1; i < top.length; i++) {
        if (top[i]!.pattern !== top[i - 1]!.pattern) continue;
        const own = top[i]!.inputs.slice(0, top[i]!.inputs.length - top[i]!.shared);
        assert.ok(own.some((v) => top[i - 1]!.outputs.includes(v)), `${top[i]!.name} reads what ${top[i - 1]!.name} gives`);
      }
    }
  });
}

function randomFeeds(s: Session, dims: Record<string, number[]>): Record<string, HostTensor> {
  const feeds: Record<string, HostTensor> = {};
  for (const [name, spec] of s.inputs) {
    const shape = dims[name]!;
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[name] = spec.dtype === 'int64'
      ? { dtype: 'int64', dims: shape, data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 7)) }
      : { dtype: 'float32', dims: shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 0.5 + (name === 'timestep' ? 500 : 0)) };
  }
  return feeds;
}

const SHAPES: Record<string, Record<string, number[]>> = {
  unet: { sample: [2, 4, 8, 8], timestep: [], encoder_hidden_states: [2, 77, 32] },
  transformer: { hidden_states: [1, 16, 64], encoder_hidden_states: [1, 8, 32], pooled_projections: [1, 32], timestep: [1], img_ids: [16, 3], txt_ids: [8, 3], guidance: [1] },
};

for (const c of CASES) {
  test(`${c.pipeline} ${c.component} from PyTorch's exporter: the pass sequence leaves its output unchanged`, async () => {
    const before = exported(c.pipeline, c.component);
    const s0 = await Session.create(before, { threads: 1 });
    const feeds = randomFeeds(s0, SHAPES[c.component]!);
    const out = s0.outputNames[0]!;
    const want = (await s0.run(feeds, [out])).outputs[out]!.data as Float32Array;
    await s0.release();
    const m = exported(c.pipeline, c.component);
    const r = runPasses(m, [deadCodeElimination, topologicalSort, uniqueNames, rulesPass('cleanup', [identityElimination, transposeFold]), deadCodeElimination]);
    const s1 = await Session.create(r.model, { threads: 1 });
    const got = (await s1.run(feeds, [out])).outputs[out]!.data as Float32Array;
    await s1.release();
    const err = relL2(got, want);
    assert.ok(err < 1e-6, `relL2 ${err}`);
  });
}
