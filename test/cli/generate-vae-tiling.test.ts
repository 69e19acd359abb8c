// `smash generate --vae-tiling [px]`: the flag reaches generate() as the vaeTiling option.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './run-cli.js';
import { fixture, readF32, relL2 } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('gen-vae-tiling');
const args = (name: string, ...more: string[]) =>
  ['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'a cat', '--steps', '1', '--width', '64', '--height', '64', '--seed', '1', '--threads', '1',
    '--out', join(tmp.dir, `${name}.safetensors`), '--report', join(tmp.dir, `${name}.json`), ...more];
const settings = (name: string) => JSON.parse(readFileSync(join(tmp.dir, `${name}.json`), 'utf8')).settings;

test('--vae-tiling: diffusers\' default tiles, --vae-tiling <px> sets the tile, a bad size is refused naming the option', async () => {
  const plain = await runCli(args('plain'));
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(settings('plain').vaeTiling, undefined);

  const dflt = await runCli(args('default', '--vae-tiling'));
  assert.equal(dflt.code, 0, dflt.stderr);
  assert.deepEqual(settings('default').vaeTiling, { tileSampleMinSize: 32, tileLatentMinSize: 16, tileOverlapFactor: 0.25 });

  const sized = await runCli(args('sized', '--vae-tiling', '16'));
  assert.equal(sized.code, 0, sized.stderr);
  assert.deepEqual(settings('sized').vaeTiling, { tileSampleMinSize: 16, tileLatentMinSize: 8, tileOverlapFactor: 0.25 });
  const image = (name: string) => readF32(join(tmp.dir, `${name}.safetensors`), 'output.image').data;
  assert.deepEqual(readF32(join(tmp.dir, 'sized.safetensors'), 'output.latents').data, readF32(join(tmp.dir, 'plain.safetensors'), 'output.latents').data);
  assert.ok(relL2(image('sized'), image('plain')) > 1e-3, 'the tiled decode changes the picture');

  const bad = await runCli(args('bad', '--vae-tiling', '7'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /vaeTiling\.tileSampleSize: expected a positive multiple of the VAE's downsampling 2.*\[BAD_OPTION\]/);
  const word = await runCli(args('word', '--vae-tiling', 'big'));
  assert.equal(word.code, 1);
  assert.match(word.stderr, /--vae-tiling must be an integer, got 'big'/);
});
