import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import { readLatentsFile, readPromptEmbedsFile, readTensorsFile, writeTensorsFile } from '../../src/pipelines/embeddings-io.js';
import { denormalize, encodePng, readPng, toRgba, writePng } from '../../src/pipelines/image.js';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { fixture, readF32 } from '../helpers.js';
import { tempDir } from './fixtures.js';

const tmp = tempDir('io');
after(() => tmp.cleanup());

describe('images', () => {
  test('denormalize maps [-1,1] to [0,1] and clamps', () => {
    assert.deepEqual(Array.from(denormalize(Float32Array.from([-3, -1, 0, 0.5, 1, 2]))), [0, 0, 0.5, 0.75, 1, 1]);
  });

  test('8-bit rounding is numpy\'s (x*255).round(), half to even', () => {
    const img = { dims: [1, 3, 1, 2], data: Float32Array.from([0.5, 1, 2.5 / 255, 0, 3.5 / 255, 1]) };
    const { data } = toRgba(img);
    assert.deepEqual([...data], [128, 2, 4, 255, 255, 0, 255, 255]);
  });

  test('PNG round trip', () => {
    const f = readF32(fixture('loops', 'e2e_sd15_tiny_cat.safetensors'), 'output.image');
    const img = { dims: f.shape, data: f.data };
    const file = join(tmp.dir, 'x.png');
    writePng(file, img);
    const back = readPng(file);
    assert.deepEqual(back.dims, [1, 3, 32, 32]);
    let max = 0;
    for (let i = 0; i < back.data.length; i++) max = Math.max(max, Math.abs(back.data[i]! - f.data[i]!));
    assert.ok(max <= 0.5 / 255 + 1e-6, `max error ${max}`);
    assert.equal(encodePng(img).subarray(1, 4).toString(), 'PNG');
  });

  test('a wrong image index names the images', () => {
    assert.throws(() => toRgba({ dims: [1, 3, 2, 2], data: new Float32Array(12) }, 1), ConfigError);
  });
});

describe('tensor files', () => {
  test('keys are found bare or with an input./trace. prefix', () => {
    const loop = fixture('loops', 'loop_sd15_euler_cfg.safetensors');
    const e = readPromptEmbedsFile(loop);
    assert.deepEqual(e.promptEmbeds.dims, [1, 77, 32]);
    assert.deepEqual(e.negativePromptEmbeds!.dims, [1, 77, 32]);
    assert.equal(e.pooledPromptEmbeds, undefined);
    assert.deepEqual(readLatentsFile(loop).dims, [1, 4, 16, 16]);
    // trace.* (the e2e files keep their embeddings there)
    const e2e = readPromptEmbedsFile(fixture('loops', 'e2e_flux_tiny_fox.safetensors'));
    assert.deepEqual(e2e.pooledPromptEmbeds!.dims, [1, 32]);
    // bare keys win
    const file = join(tmp.dir, 'bare.safetensors');
    writeTensorsFile(file, { latents: { dims: [1, 2], data: Float32Array.from([1, 2]) }, 'input.latents': { dims: [1, 1], data: Float32Array.from([3]) } });
    assert.deepEqual(Array.from(readTensorsFile(file).latents!.data), [1, 2]);
  });

  test('a file without the tensor names the option', () => {
    const f = fixture('loops', 'e2e_sd15_tiny_cat.safetensors');
    assert.deepEqual(readLatentsFile(f).dims, [1, 4, 16, 16]);
    const other = fixture('models', 'clip-text-tiny', 'reference.safetensors');
    assert.throws(() => readLatentsFile(other), (e: unknown) => e instanceof ConfigError && e.key === 'latents');
    assert.throws(() => readPromptEmbedsFile(other), (e: unknown) => e instanceof ConfigError && e.key === 'promptEmbeds');
  });

  test('written outputs read back with metadata', () => {
    const file = join(tmp.dir, 'out.safetensors');
    writeTensorsFile(file, { 'output.image': { dims: [1, 3, 1, 1], data: Float32Array.from([0, 0.5, 1]) } }, { settings: '{}' });
    const f = SafetensorsFile.open(file);
    assert.equal(f.metadata.settings, '{}');
    assert.deepEqual(Array.from(readF32(file, 'output.image').data), [0, 0.5, 1]);
  });
});
