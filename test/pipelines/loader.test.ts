import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { cpSync, existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { cacheKey, cacheRoot, ensureConverted } from '../../src/pipelines/cache.js';
import { inspectPipelineFolder, loadPipeline } from '../../src/pipelines/loader.js';
import { fixture } from '../helpers.js';
import { assemblePipeline, loopFluxFolder, loopSdFolder, metadata, tempDir } from './fixtures.js';

const tmp = tempDir('loader');
after(() => tmp.cleanup());
let n = 0;
const fresh = () => {
  const d = join(tmp.dir, `p${n++}`);
  mkdirSync(d);
  return d;
};

describe('cache', () => {
  test('root: cacheDir, else $SMASH_CACHE, else ~/.cache/smash', () => {
    const saved = process.env.SMASH_CACHE;
    try {
      process.env.SMASH_CACHE = '/x/y';
      assert.equal(cacheRoot(), '/x/y');
      assert.equal(cacheRoot('/a'), '/a');
      delete process.env.SMASH_CACHE;
      assert.match(cacheRoot(), /\.cache[/\\]smash$/);
    } finally {
      if (saved === undefined) delete process.env.SMASH_CACHE;
      else process.env.SMASH_CACHE = saved;
    }
  });

  test('converted once; a changed source file gives a new key', () => {
    const src = join(tmp.dir, 'flux-copy');
    cpSync(fixture('pipelines', 'flux-tiny'), src, { recursive: true });
    const cacheDir = join(tmp.dir, 'cache');
    const k1 = cacheKey(src);
    assert.equal(cacheKey(src), k1, 'stable');
    assert.notEqual(cacheKey(src, { dtype: 'float16' }), k1, 'options are part of the key');
    const a = ensureConverted(src, { cacheDir });
    assert.equal(a.converted, true);
    assert.ok(existsSync(join(a.dir, 'transformer', 'model.onnx')));
    assert.equal(JSON.parse(readFileSync(join(a.dir, 'smash-cache.json'), 'utf8')).key, k1);
    const b = ensureConverted(src, { cacheDir });
    assert.deepEqual([b.converted, b.dir], [false, a.dir]);
    // touch one file: new mtime, new key
    const cfg = join(src, 'scheduler', 'scheduler_config.json');
    utimesSync(cfg, new Date(), new Date(Date.now() + 5000));
    assert.notEqual(cacheKey(src), k1);
    // a new file too
    const k2 = cacheKey(src);
    writeFileSync(join(src, 'README.md'), 'hi');
    assert.notEqual(cacheKey(src), k2);
  });
});

describe('folder checks (before conversion or sessions)', () => {
  test('a component listed in model_index.json but missing', () => {
    const d = assemblePipeline(fresh(), {
      className: 'StableDiffusionPipeline',
      components: { unet: ['UNet2DConditionModel', fixture('models', 'sd15-unet-tiny')], vae: ['AutoencoderKL', fixture('models', 'sd-vae-tiny')] },
      scheduler: JSON.parse(metadata('loop_sd15_euler_cfg').scheduler!),
      listedOnly: { text_encoder: 'CLIPTextModel' },
    });
    assert.throws(() => inspectPipelineFolder(d), (e: unknown) => e instanceof ModelFormatError && e.code === 'COMPONENT_MISSING' && /'text_encoder'/.test(e.message));
  });

  test('a required component absent from model_index.json', () => {
    const d = assemblePipeline(fresh(), {
      className: 'FluxPipeline',
      components: { vae: ['AutoencoderKL', fixture('models', 'flux-vae-tiny')] },
      scheduler: JSON.parse(metadata('loop_flux_dev').scheduler!),
    });
    assert.throws(() => inspectPipelineFolder(d), (e: unknown) => e instanceof ModelFormatError && /'transformer'/.test(e.message));
  });

  test('an ONNX folder whose graph is missing', async () => {
    const d = fresh();
    cpSync(fixture('pipelines', 'sd15-tiny', 'model_index.json'), join(d, 'model_index.json'));
    for (const c of ['scheduler', 'tokenizer']) cpSync(fixture('pipelines', 'sd15-tiny', c), join(d, c), { recursive: true });
    mkdirSync(join(d, 'unet'));
    writeFileSync(join(d, 'unet', 'model.onnx'), '');
    cpSync(fixture('pipelines', 'sd15-tiny', 'unet', 'config.json'), join(d, 'unet', 'config.json'));
    await assert.rejects(loadPipeline(d), (e: unknown) => e instanceof ModelFormatError && /'vae'/.test(e.message));
  });

  test('SD: a text encoder narrower or wider than the unet cross_attention_dim', () => {
    const d = loopSdFolder(fresh(), {
      text_encoder: ['CLIPTextModelWithProjection', fixture('models', 'clip-text-proj-tiny')],
      tokenizer: ['CLIPTokenizer', fixture('tokenizers', 'clip')],
    });
    assert.throws(() => inspectPipelineFolder(d), (e: unknown) => e instanceof ConfigError && e.key === 'text_encoder' && /cross_attention_dim 32/.test(e.message) && /40/.test(e.message));
  });

  test('Flux: a T5 whose width is not the joint_attention_dim', () => {
    const d = loopFluxFolder(fresh(), {
      text_encoder_2: ['T5EncoderModel', fixture('models', 'clip-text-proj-tiny')],
      tokenizer_2: ['T5TokenizerFast', fixture('pipelines', 'flux-tiny', 'tokenizer_2')],
    });
    assert.throws(() => inspectPipelineFolder(d), (e: unknown) => e instanceof ConfigError && e.key === 'text_encoder_2' && /joint_attention_dim 32/.test(e.message));
  });

  test('matching encoders pass', () => {
    const d = loopSdFolder(fresh(), {
      text_encoder: ['CLIPTextModel', fixture('models', 'clip-text-tiny')],
      tokenizer: ['CLIPTokenizer', fixture('tokenizers', 'clip')],
    });
    assert.equal(inspectPipelineFolder(d).encoders.length, 1);
  });

  test('an unsupported pipeline class', () => {
    const d = fresh();
    writeFileSync(join(d, 'model_index.json'), JSON.stringify({ _class_name: 'KandinskyPipeline' }));
    assert.throws(() => inspectPipelineFolder(d), (e: unknown) => e instanceof ModelFormatError && e.code === 'UNSUPPORTED_PIPELINE');
  });

  test('no such folder', () => {
    assert.throws(() => inspectPipelineFolder(join(tmp.dir, 'nope')), ModelFormatError);
  });
});
