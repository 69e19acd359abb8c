import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './run-cli.js';
import { readPng } from '../../src/pipelines/image.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { loopFile, loopFluxFolder, loopSdFolder, readIds, tempDir } from '../pipelines/fixtures.js';

const cli = runCli;

const tmp = tempDir('cli-generate');
const saved = process.env.SMASH_CACHE;
let sdDir: string;
let fluxDir: string;

before(() => {
  process.env.SMASH_CACHE = join(tmp.dir, 'cache');
  sdDir = loopSdFolder(join(tmp.dir, 'loop-sd'));
  fluxDir = loopFluxFolder(join(tmp.dir, 'loop-flux'));
});

after(() => {
  if (saved === undefined) delete process.env.SMASH_CACHE;
  else process.env.SMASH_CACHE = saved;
  tmp.cleanup();
});

describe('smash generate reproduces the loop fixtures', () => {
  test('loop_sd15_euler_cfg --out x.safetensors', async () => {
    const f = loopFile('loop_sd15_euler_cfg');
    const out = join(tmp.dir, 'sd.safetensors');
    const report = join(tmp.dir, 'sd-report.json');
    const r = await cli(['generate', '--model', sdDir, '--prompt-embeds', f, '--latents', f, '--steps', '8', '--guidance', '7.5',
      '--width', '32', '--height', '32', '--out', out, '--report', report, '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    const e = relL2(readF32(out, 'output.image').data, readF32(f, 'output.image').data);
    assert.ok(e < 1e-3, `output.image relL2 ${e}`);
    assert.deepEqual(readF32(out, 'output.latents').shape, [1, 4, 16, 16]);
    assert.match(r.stdout, /s\/step/);
    assert.match(r.stdout, /peak RSS/);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    assert.equal(rep.settings.steps, 8);
    assert.equal(rep.settings.guidanceScale, 7.5);
    assert.equal(rep.settings.scheduler.className, 'EulerDiscreteScheduler');
    assert.equal(rep.settings.latentsGiven, true);
    for (const k of ['totalMs', 'textEncodeMs', 'denoiseMs', 'decodeMs']) assert.equal(typeof rep.timings[k], 'number', k);
    assert.equal(rep.timings.stepsMs.length, 8);
    assert.ok(rep.peakRssBytes > 1e6);
  });

  test('loop_flux_dev --out x.safetensors', async () => {
    const f = loopFile('loop_flux_dev');
    const out = join(tmp.dir, 'flux.safetensors');
    const r = await cli(['generate', '--model', fluxDir, '--prompt-embeds', f, '--latents', f, '--steps', '6', '--guidance', '3.5',
      '--width', '32', '--height', '32', '--out', out, '--threads', '1']);
    assert.equal(r.code, 0, r.stderr);
    const e = relL2(readF32(out, 'output.image').data, readF32(f, 'output.image').data);
    assert.ok(e < 1e-3, `output.image relL2 ${e}`);
    assert.deepEqual(readF32(out, 'output.latents').shape, [1, 16, 16, 16]);
  });
});

describe('outputs', () => {
  const args = (out: string, ...more: string[]) => ['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'a photo of a cat',
    '--steps', '2', '--width', '32', '--height', '32', '--seed', '7', '--threads', '1', '--out', out, ...more];

  test('a PNG; an existing file is kept without --force, replaced with it', async () => {
    const out = join(tmp.dir, 'cat.png');
    assert.equal((await cli(args(out))).code, 0);
    assert.deepEqual(readPng(out).dims, [1, 3, 32, 32]);
    const mtime = statSync(out).mtimeMs;
    const again = await cli(args(out));
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists.*--force.*\[OUT_EXISTS\]/);
    assert.equal(statSync(out).mtimeMs, mtime);
    assert.equal((await cli(args(out, '--force'))).code, 0);
  });

  test('a folder gets image-0.png, image-1.png …', async () => {
    const dir = join(tmp.dir, 'images');
    const r = await cli(args(dir, '--num-images', '2'));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'image-0.png')) && existsSync(join(dir, 'image-1.png')));
  });

  test('bad options fail before any output, naming the option', async () => {
    const out = join(tmp.dir, 'bad.png');
    for (const [more, re] of [
      [['--width', '33'], /width/],
      [['--steps', '0'], /steps/],
      [['--steps', 'many'], /--steps/],
      [['--guidance', '-2'], /--guidance/],
      [['--provider', 'tpu'], /--provider/],
      [['--latents', fixture('models', 'clip-text-tiny', 'reference.safetensors')], /latents/],
      [['--prompt-embeds', loopFile('loop_sd15_euler_cfg')], /prompt/], // both prompt and embeddings
      [['--latents', loopFile('loop_flux_dev')], /latents: expected shape \[1, 4, 16, 16\]/], // checked by generate(), after the load
    ] as [string[], RegExp][]) {
      const r = await cli([...args(out), ...more]);
      assert.equal(r.code, 1, `${more.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.ok(!existsSync(out), more.join(' '));
    }
    const jpg = await cli(args(join(tmp.dir, 'x.jpg')));
    assert.equal(jpg.code, 1);
    assert.match(jpg.stderr, /--out/);
  });
});

describe('smash tokenize', () => {
  test('prints each tokenizer\'s ids as the pipeline feeds them', async () => {
    const r = await cli(['tokenize', '--model', fixture('pipelines', 'flux-tiny'), '--prompt', 'a photo of a red fox in the snowy forest', '--max-sequence-length', '32']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.tokenizers.tokenizer.ids, readIds('e2e_flux_tiny_fox', 'input.clip_input_ids'));
    assert.deepEqual(j.tokenizers.tokenizer_2.ids, readIds('e2e_flux_tiny_fox', 'input.t5_input_ids'));
    assert.equal(j.tokenizers.tokenizer_2.maxLength, 32);
  });

  test('works on a one-tokenizer pipeline, without padding', async () => {
    const r = await cli(['tokenize', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'a photo of a cat', '--no-padding']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(j.tokenizers), ['tokenizer']);
    const ref = readIds('e2e_sd15_tiny_cat', 'input.prompt_input_ids');
    assert.deepEqual(j.tokenizers.tokenizer.ids, ref.slice(0, j.tokenizers.tokenizer.length));
  });
});
