// CLIPVisionModelWithProjection and CLIPImageProcessor's preprocessing against transformers references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildCLIPVisionModelWithProjection, clipVisionConfig } from '../../src/models/clip-vision.js';
import { ModelConfig } from '../../src/models/config.js';
import { Weights } from '../../src/models/weights.js';
import { Session } from '../../src/runtime/session.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { clipPreprocess } from '../../src/eval/clip-preprocess.js';
import { buildComponent } from '../../src/models/convert.js';
import '../../src/models/architectures.js';
import { ModelFormatError } from '../../src/errors.js';
import { fixture, readF32, relL2 } from '../helpers.js';

const DIR = fixture('models', 'clip-vision-proj-tiny');
const REF = fixture('models', 'clip-vision-proj-tiny', 'reference.safetensors');

test('CLIPVisionModelWithProjection matches transformers (image_embeds, last_hidden_state)', async () => {
  const model = buildCLIPVisionModelWithProjection(ModelConfig.load(DIR), new Weights(Checkpoint.open(DIR))).model!;
  const px = readF32(REF, 'input.pixel_values');
  const s = await Session.create(model);
  try {
    const out = (await s.run({ pixel_values: { dtype: 'float32', dims: px.shape, data: px.data } })).outputs;
    for (const key of ['image_embeds', 'last_hidden_state']) {
      const ref = readF32(REF, `output.${key}`);
      assert.deepEqual(out[key]!.dims, ref.shape, key);
      const err = relL2(out[key]!.data as Float32Array, ref.data);
      assert.ok(err < 1e-4, `${key}: relative L2 ${err}`);
    }
  } finally {
    await s.release();
  }
});

test('the converter builds CLIPVisionModelWithProjection folders by their config class', () => {
  const models = buildComponent(DIR);
  assert.equal(models.model!.metadataProps.get('diffusers.class_name'), 'CLIPVisionModelWithProjection');
  assert.deepEqual(models.model!.graph.outputs.map((o) => o.name).sort(), ['image_embeds', 'last_hidden_state', 'pooler_output']);
});

test('a full CLIPModel config builds its vision tower; a text config is refused naming the key', () => {
  const vision = ModelConfig.load(DIR).raw;
  const full = new ModelConfig({ architectures: ['CLIPModel'], projection_dim: vision.projection_dim, vision_config: { ...vision, architectures: undefined } }, 'config.json');
  const c = clipVisionConfig(full);
  assert.equal(c.className, 'CLIPVisionModelWithProjection');
  assert.equal(c.raw.hidden_size, 32);
  const model = buildCLIPVisionModelWithProjection(full, new Weights(Checkpoint.open(DIR))).model!;
  assert.ok(model.graph.outputs.some((o) => o.name === 'image_embeds'));
  assert.throws(() => buildCLIPVisionModelWithProjection(new ModelConfig({ architectures: ['CLIPTextModel'] }, 'x/config.json'), new Weights(Checkpoint.open(DIR))),
    (e: unknown) => e instanceof ModelFormatError && /architectures/.test(e.message));
  assert.throws(() => clipVisionConfig(new ModelConfig({ architectures: ['CLIPModel'] }, 'x/config.json')), /vision_config/);
});

test('CLIP preprocessing (shortest-edge bicubic resize, center crop, mean/std) matches CLIPImageProcessor', () => {
  const img = readF32(REF, 'input.image');
  const ref = readF32(REF, 'output.pixel_values_processed');
  const got = clipPreprocess(img.data, img.shape, { size: 32, crop: 32 });
  assert.deepEqual(got.dims, ref.shape);
  // PIL's 8-bit fixed-point resize reproduced: every pixel lands on the same 8-bit level
  let worst = 0;
  for (let i = 0; i < ref.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - ref.data[i]!));
  assert.ok(worst < 1e-5, `largest difference ${worst} (one 8-bit level is about 0.015)`);
});
