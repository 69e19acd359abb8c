// Report units in graph names: packing is exact both ways, and a name without ranges reads as itself.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alwaysModules, packModules, unpackModules } from '../../../src/algorithms/cachers/units.js';

test('packModules: consecutive siblings become ranges, unpackModules gives the list back', () => {
  const flux = [...Array.from({ length: 18 }, (_, i) => `transformer_blocks.${i + 1}`), ...Array.from({ length: 38 }, (_, i) => `single_transformer_blocks.${i}`)];
  assert.equal(packModules(flux), 'transformer_blocks.1-18+single_transformer_blocks.0-37');
  assert.deepEqual(unpackModules(packModules(flux)), flux);
  const unet = ['down_blocks.0.resnets.1', 'down_blocks.0.attentions.1', 'down_blocks.0.downsamplers', 'down_blocks.1', 'down_blocks.2', 'mid_block', 'up_blocks.0', 'up_blocks.3.resnets.0', 'up_blocks.3.resnets.1', 'up_blocks.3.resnets.3'];
  assert.equal(packModules(unet), 'down_blocks.0.resnets.1+down_blocks.0.attentions.1+down_blocks.0.downsamplers+down_blocks.1-2+mid_block+up_blocks.0+up_blocks.3.resnets.0-1+up_blocks.3.resnets.3');
  assert.deepEqual(unpackModules(packModules(unet)), unet);
  // FORA's part names and older bundles' labels stand for themselves
  assert.deepEqual(unpackModules('transformer_blocks.3.attn'), ['transformer_blocks.3.attn']);
  assert.deepEqual(unpackModules('transformer_blocks.1..single_transformer_blocks.37'), ['transformer_blocks.1..single_transformer_blocks.37']);
  assert.deepEqual(unpackModules(''), []);
});

test('alwaysModules: read from the cache.always/ output name, none without one', () => {
  assert.deepEqual(alwaysModules(['out_sample', 'cache_out/x/0', 'cache.always/transformer_blocks.0-1+mid_block']), ['transformer_blocks.0', 'transformer_blocks.1', 'mid_block']);
  assert.deepEqual(alwaysModules(['out_sample']), []);
});
