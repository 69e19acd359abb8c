// `smash eval` end to end on flux-tiny with two configs: results.json, report.html, and (where a
// chromium binary exists) a headless screenshot of the report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';
import { runCli } from './run-cli.js';

const tmp = tempCache('cli-eval');

const out = join(tmp.dir, 'eval');

test('smash eval on flux-tiny with int8Dynamic and ortCompile writes results.json and a self-contained report.html', async () => {
  writeFileSync(join(tmp.dir, 'int8.json'), '{"int8Dynamic":{}}');
  writeFileSync(join(tmp.dir, 'compile.json'), '{"ort_compile":{}}');
  const r = await runCli(['eval', '--model', fixture('pipelines', 'flux-tiny'), '--config', join(tmp.dir, 'int8.json'), '--config', join(tmp.dir, 'compile.json'),
    '--prompts', 'shapes:2', '--seeds', '0,1', '--steps', '3', '--width', '32', '--height', '32', '--max-sequence-length', '32', '--threads', '1', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { results: { name: string; metrics: Record<string, number | string>; samples: unknown[] }[] };
  assert.deepEqual(json.results.map((x) => x.name), ['base', 'int8', 'compile']);
  for (const x of json.results) {
    assert.equal(x.samples.length, 4);
    for (const m of ['latencyMs', 'stepMs', 'throughputImagesPerS', 'coldLoadMs', 'peakRssMiB', 'modelBytes']) assert.equal(typeof x.metrics[m], 'number', `${x.name} ${m}`);
  }
  const int8 = json.results[1]!.metrics;
  assert.ok(typeof int8.psnrDb === 'number' && int8.psnrDb > 20 && (int8.ssim as number) > 0.5);
  assert.ok((int8.smashMs as number) > 0);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.equal((html.match(/data:image\/png;base64,/g) ?? []).length, 3 * 4);
  assert.ok(html.includes('id="tradeoff"'));
  assert.ok(existsSync(join(out, 'bundles', 'int8', 'smash_config.json')));
  // a second run into the same folder needs --force
  const again = await runCli(['eval', '--model', fixture('pipelines', 'flux-tiny'), '--config', join(tmp.dir, 'int8.json'), '--out', out]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /OUT_EXISTS|--force/);
});

test('missing CLIP model for cmmd is named before any work', async () => {
  writeFileSync(join(tmp.dir, 'q.json'), '{"int8Dynamic":{}}');
  const r = await runCli(['eval', '--model', fixture('pipelines', 'flux-tiny'), '--config', join(tmp.dir, 'q.json'), '--metrics', 'psnrDb,cmmd', '--out', join(tmp.dir, 'none')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /CLIP_MODEL_MISSING/);
  assert.match(r.stderr, /--clip/);
});

test('a headless-Chromium screenshot of the report renders', (t) => {
  if (!existsSync(join(out, 'report.html'))) return t.skip('the eval run above did not write a report');
  const png = join(tmp.dir, 'report.png');
  const r = spawnSync(process.execPath, ['scripts/screenshot-report.mjs', join(out, 'report.html'), png, '1000', '1400'], { encoding: 'utf8', timeout: 90_000 });
  if (r.status === 2) return t.skip(`no chromium binary: ${r.stderr.trim()}`);
  assert.equal(r.status, 0, r.stderr);
  // a blank page compresses to a few kB; pictures, table and plot make it much larger
  assert.ok(statSync(png).size > 20_000, `screenshot is ${statSync(png).size} bytes`);
});
