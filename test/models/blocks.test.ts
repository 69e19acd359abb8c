import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOCKS_KEY, deriveBlocks, readBlocks, recordedBlockPatterns, type BlockRecord } from '../../src/ir/blocks.js';
import { allNodes, type Model } from '../../src/ir/graph.js';
import { NAME_SCOPES_KEY } from '../../src/ir/modules.js';
import { decodeModel, encodeModel } from '../../src/ir/serde.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { BLOCK_PATTERNS, blockPatternsFor, modelBlocks } from '../../src/models/block-patterns.js';
import { buildComponent } from '../../src/models/convert.js';
import { Session } from '../../src/runtime/session.js';
import { fixture } from '../helpers.js';
import { SIZES, buildFixture, feedsFor } from './fixture-builds.js';

const DENOISERS = ['flux-transformer-tiny', 'sd3-transformer-tiny', 'sd15-unet-tiny', 'sdxl-unet-tiny'];
const built = new Map(DENOISERS.map((d) => [d, buildFixture(d).get(d)!]));

const names = (blocks: BlockRecord[], pattern: string) => blocks.filter((b) => b.pattern === pattern).map((b) => b.name);
const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}.${i}`);

/** What an Optimum/TorchScript export of the same network carries: names only, no metadata. */
function stripped(model: Model): Model {
  const m = decodeModel(encodeModel(model));
  m.metadataProps.delete(BLOCKS_KEY);
  m.metadataProps.delete('diffusers.class_name');
  for (const n of allNodes(m.graph)) n.metadata.delete(NAME_SCOPES_KEY);
  return m;
}

test('built denoisers record their repeating blocks', () => {
  const flux = readBlocks(built.get('flux-transformer-tiny')!)!;
  assert.deepEqual(names(flux, 'transformer_blocks.*'), range('transformer_blocks', 2));
  assert.deepEqual(names(flux, 'single_transformer_blocks.*'), range('single_transformer_blocks', 3));
  assert.deepEqual(names(flux, 'transformer_blocks.*.attn'), ['transformer_blocks.0.attn', 'transformer_blocks.1.attn']);
  const sd3 = readBlocks(built.get('sd3-transformer-tiny')!)!;
  assert.deepEqual(names(sd3, 'transformer_blocks.*'), range('transformer_blocks', 2));
  const sd15 = readBlocks(built.get('sd15-unet-tiny')!)!;
  assert.deepEqual(names(sd15, 'down_blocks.*'), range('down_blocks', 4));
  assert.deepEqual(names(sd15, 'mid_block'), ['mid_block']);
  assert.deepEqual(names(sd15, 'up_blocks.*'), range('up_blocks', 4));
  assert.deepEqual(names(sd15, 'down_blocks.*.resnets.*'), range('down_blocks', 4).flatMap((d) => range(`${d}.resnets`, 2)));
  assert.deepEqual(names(sd15, 'up_blocks.*.attentions.*'), [1, 2, 3].flatMap((i) => range(`up_blocks.${i}.attentions`, 3)));
  assert.deepEqual(names(sd15, 'mid_block.attentions.*'), ['mid_block.attentions.0']);
  const sdxl = readBlocks(built.get('sdxl-unet-tiny')!)!;
  assert.deepEqual(names(sdxl, 'down_blocks.*.attentions.*'), [1, 2].flatMap((i) => range(`down_blocks.${i}.attentions`, 2)));
  assert.deepEqual(names(sdxl, 'up_blocks.*'), range('up_blocks', 3));
});

test('block boundaries: streams line up, blocks chain, shared inputs come last', () => {
  const flux = readBlocks(built.get('flux-transformer-tiny')!)!;
  const d0 = flux.find((b) => b.name === 'transformer_blocks.0')!;
  // [hidden_states, encoder_hidden_states] then temb and the rotary cos/sin
  assert.deepEqual(d0.inputs.slice(0, 2), ['/x_embedder/Add_output_0', '/context_embedder/Add_output_0']);
  assert.equal(d0.shared, 3);
  assert.deepEqual(d0.inputs.slice(3), ['/pos_embed/Cos_output_0', '/pos_embed/Sin_output_0']);
  assert.equal(d0.outputs.length, 2);
  for (const [pattern, blocks] of [['transformer_blocks.*', flux], ['single_transformer_blocks.*', flux], ['transformer_blocks.*', readBlocks(built.get('sd3-transformer-tiny')!)!]] as const) {
    const seq = blocks.filter((b) => b.pattern === pattern);
    for (let i = 1; i < seq.length; i++) {
      const own = seq[i]!.inputs.slice(0, seq[i]!.inputs.length - seq[i]!.shared);
      assert.deepEqual(own, seq[i - 1]!.outputs, `${seq[i]!.name} takes ${seq[i - 1]!.name}'s outputs`);
      assert.deepEqual(seq[i]!.inputs.slice(own.length), seq[0]!.inputs.slice(seq[0]!.inputs.length - seq[0]!.shared));
    }
  }
  const unet = readBlocks(built.get('sd15-unet-tiny')!)!;
  const up = unet.filter((b) => b.pattern === 'up_blocks.*');
  // DeepCache's cut: the up-path feature entering up block i is its first input
  for (let i = 1; i < up.length; i++) assert.equal(up[i]!.inputs[0], up[i - 1]!.outputs[0]);
  const down = unet.filter((b) => b.pattern === 'down_blocks.*');
  assert.deepEqual(down[0]!.inputs, ['/conv_in/Conv_output_0', '/Mul_output_0', 'encoder_hidden_states']);
  // every res sample of the down path is read by exactly one up block's own inputs
  const skips = down.flatMap((b) => b.outputs);
  const ownUp = up.flatMap((b) => b.inputs.slice(1, b.inputs.length - b.shared));
  assert.deepEqual([...ownUp].sort(), [...skips, '/conv_in/Conv_output_0'].sort());
});

test('block records survive saveModel/loadModel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blocks-'));
  try {
    for (const [name, m] of built) {
      // a copy: saving moves the model's weights to the file, which goes away below
      saveModel(decodeModel(encodeModel(m)), join(dir, name, 'model.onnx'));
      const back = loadModel(join(dir, name, 'model.onnx'));
      assert.deepEqual(readBlocks(back), readBlocks(m), name);
      assert.deepEqual(recordedBlockPatterns(back), [...BLOCK_PATTERNS[m.metadataProps.get('diffusers.class_name')!]!]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('derivation from node names alone gives the recorded blocks', () => {
  for (const [name, m] of built) {
    const bare = stripped(m);
    assert.equal(readBlocks(bare), undefined);
    // the patterns are found from the graph when the class is unknown
    assert.deepEqual(blockPatternsFor(bare), recordedBlockPatterns(m), name);
    assert.deepEqual(modelBlocks(bare), readBlocks(m), name);
    assert.deepEqual(deriveBlocks(bare, recordedBlockPatterns(m)!), readBlocks(m), name);
  }
});

test('block boundary values are real tensors of the stream\'s shape', async () => {
  const expected: Record<string, (b: BlockRecord) => number[][] | undefined> = {
    // Flux double block: [hidden, context], single block: [context + hidden]; dim 32
    'flux-transformer-tiny': (b) => (b.pattern === 'transformer_blocks.*' ? [[2, SIZES.packed_height_width!, 32], [2, SIZES.sequence_length!, 32]]
      : b.pattern === 'single_transformer_blocks.*' ? [[2, SIZES.sequence_length! + SIZES.packed_height_width!, 32]] : undefined),
    // SD3 patchifies 16×16 latents by 2: 64 tokens; the last block keeps no context
    'sd3-transformer-tiny': (b) => (b.pattern === 'transformer_blocks.*' ? [[2, 64, 32], [2, SIZES.sequence_length!, 32]].slice(0, b.outputs.length) : undefined),
    // down block i: res samples at 16 / 2^i, the last one downsampled (no downsampler in the last block)
    'sd15-unet-tiny': (b) => {
      if (b.pattern !== 'down_blocks.*') return undefined;
      const c = [16, 32, 32, 32][b.index]!;
      const s = 16 >> b.index;
      return b.outputs.map((_, k) => (k === 2 ? [2, c, s / 2, s / 2] : [2, c, s, s]));
    },
  };
  for (const [name, shapesOf] of Object.entries(expected)) {
    const m = built.get(name)!;
    const blocks = readBlocks(m)!;
    const byName = m.graph.values();
    const exposed = new Set<string>();
    for (const b of blocks) for (const v of [...b.inputs, ...b.outputs]) exposed.add(v);
    for (const v of exposed) if (!m.graph.outputs.includes(byName.get(v)!) && !m.graph.inputs.includes(byName.get(v)!)) m.graph.outputs.push(byName.get(v)!);
    const s = await Session.create(m);
    const feeds = feedsFor(m);
    const { outputs } = await s.run(feeds);
    await s.release();
    const dims = (v: string) => outputs[v]?.dims ?? feeds[v]!.dims;
    let checked = 0;
    for (const b of blocks) {
      for (const v of [...b.inputs, ...b.outputs]) assert.ok(outputs[v] || feeds[v], `${name}: ${b.name}: ${v} computed`);
      // own inputs[k] is the stream outputs[k] updates: same shape across transformer blocks
      if (b.pattern.startsWith('transformer_blocks') || b.pattern.startsWith('single_')) {
        b.outputs.forEach((o, k) => assert.deepEqual(dims(b.inputs[k]!), dims(o), `${name}: ${b.name} stream ${k}`));
      }
      const want = shapesOf(b);
      if (!want) continue;
      assert.deepEqual(b.outputs.map((o) => [...dims(o)]), want, `${name}: ${b.name}`);
      checked++;
    }
    assert.ok(checked >= 2, name);
  }
});

test('float16 conversion keeps the block records valid', () => {
  const m = buildComponent(fixture('models', 'sd15-unet-tiny'), { dtype: 'float16' }).model!;
  const blocks = readBlocks(m)!;
  assert.ok(blocks.find((b) => b.name === 'down_blocks.0')!.inputs.includes('encoder_hidden_states_fp16'));
  assert.deepEqual(blocks.map((b) => b.name), readBlocks(built.get('sd15-unet-tiny')!)!.map((b) => b.name));
});
