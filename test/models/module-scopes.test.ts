import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allNodes } from '../../src/ir/graph.js';
import { NAME_SCOPES_KEY, modulePath, selectNodes } from '../../src/ir/modules.js';
import { decodeModel, encodeModel } from '../../src/ir/serde.js';
import { FIXTURE_COMPONENTS, buildFixture } from './fixture-builds.js';

const GLOBS = ['*norm*', 'transformer_blocks.*.attn', '*.attn1.*', 'down_blocks.?', 'up_blocks.[12].resnets.*', '*embed*', 'text_model.encoder.layers.0', 'encoder.block.*.layer.1'];

test('every built node records its module path, equal to the one derived from its name, and globs select the same nodes without it', () => {
  for (const comp of FIXTURE_COMPONENTS) {
    for (const [key, model] of buildFixture(comp)) {
      // what an Optimum/TorchScript export of the same network looks like: no metadata
      const stripped = decodeModel(encodeModel(model, undefined));
      for (const n of allNodes(stripped.graph)) n.metadata.delete(NAME_SCOPES_KEY);
      const built = [...allNodes(model.graph)];
      const bare = [...allNodes(stripped.graph)];
      assert.equal(bare.length, built.length);
      let scoped = 0;
      built.forEach((n, i) => {
        assert.ok(n.metadata.has(NAME_SCOPES_KEY), `${key}: ${n.name} has no module path`);
        assert.equal(bare[i]!.metadata.has(NAME_SCOPES_KEY), false);
        assert.equal(modulePath(bare[i]!), modulePath(n), `${key}: ${n.name}`);
        if (modulePath(n)) scoped++;
      });
      assert.ok(scoped > built.length * 0.9, `${key}: most nodes belong to a module (${scoped}/${built.length})`);
      for (const g of GLOBS) {
        const a = selectNodes(model.graph, { include: [g], exclude: ['*.to_k'] }).map((n) => n.name);
        const b = selectNodes(stripped.graph, { include: [g], exclude: ['*.to_k'] }).map((n) => n.name);
        assert.deepEqual(b, a, `${key}: ${g}`);
      }
    }
  }
});

test('globs reach the modules users name in each architecture', () => {
  const flux = buildFixture('flux-transformer-tiny').get('flux-transformer-tiny')!;
  const attn = selectNodes(flux.graph, { include: ['transformer_blocks.*.attn'] });
  assert.ok(attn.length > 0);
  assert.ok(attn.every((n) => /^transformer_blocks\.\d+\.attn(\.|$)/.test(modulePath(n))));
  assert.ok(attn.some((n) => n.name === '/transformer_blocks.0/attn/to_q/MatMul'));
  const matmuls = selectNodes(flux.graph, { exclude: ['*norm*', '*embed*'] }).filter((n) => n.opType === 'MatMul');
  assert.ok(matmuls.length > 0 && matmuls.every((n) => !/norm|embed/.test(modulePath(n))));
  assert.ok(!matmuls.some((n) => n.name.startsWith('/x_embedder/')));
  const unet = buildFixture('sd15-unet-tiny').get('sd15-unet-tiny')!;
  const conv1 = selectNodes(unet.graph, { include: ['down_blocks.0.resnets.*.conv1'] });
  // layers_per_block = 2: one Conv per resnet's conv1
  assert.deepEqual(conv1.map((n) => n.name), ['/down_blocks.0/resnets.0/conv1/Conv', '/down_blocks.0/resnets.1/conv1/Conv']);
});
