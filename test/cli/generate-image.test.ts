// Issue 14: image-to-image from the command line (--image, --strength).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('gen-image');

const sd = fixture('pipelines', 'sd15-tiny');

test('--image <png> --strength: the size comes from the image, the start step from the strength', async () => {
  const src = join(tmp.dir, 'src.png');
  const base = ['generate', '--model', sd, '--seed', '1', '--threads', '1', '--prompt', 'a cat'];
  assert.equal((await runCli([...base, '--steps', '2', '--width', '32', '--height', '32', '--out', src])).code, 0);
  const report = join(tmp.dir, 'i2i.json');
  const r = await runCli([...base, '--steps', '10', '--image', src, '--strength', '0.3', '--out', join(tmp.dir, 'i2i.png'), '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const settings = JSON.parse(readFileSync(report, 'utf8')).settings;
  assert.equal(settings.width, 32);
  assert.equal(settings.startIndex, 7);
  assert.equal(settings.strength, 0.3);
  const none = await runCli([...base, '--steps', '10', '--image', src, '--strength', '0.01', '--out', join(tmp.dir, 'none.png')]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /strength: 0.01 with 10 steps leaves no denoising step/);
  const alone = await runCli([...base, '--strength', '0.5', '--out', join(tmp.dir, 'alone.png')]);
  assert.match(alone.stderr, /--strength needs --image/);
});
