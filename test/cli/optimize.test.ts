import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('cli-optimize');

const config = (spec: unknown) => {
  const f = join(tmp.dir, `smash-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(f, JSON.stringify(spec));
  return f;
};

test('smash optimize --explain prints the order, hyperparameters and touched modules, and writes nothing', async () => {
  const out = join(tmp.dir, 'never');
  const r = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--config', config({ ort_compile: {}, int8_dynamic: {}, qkv: {} }), '--explain', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^1\. qkv \(factorizer\)/);
  assert.match(r.stdout, /\n2\. int8Dynamic \(quantizer\).*\n   hyperparameters: \{"conv":"none","components":\["denoiser"\]\}\n(   .*\n)*   transformer: \d+ modules: transformer_blocks\.0\./);
  assert.doesNotMatch(r.stdout, /2\. int8Dynamic[^]*vae_decoder[^]*3\. ortCompile/, 'the VAE is no default quantizer target');
  assert.match(r.stdout, /\n3\. ortCompile \(compiler\)/);
  assert.ok(!existsSync(out));
});

test('smash optimize --with: algorithms and hyperparameters as flags, over --config\'s; neither is an error', async () => {
  const out = join(tmp.dir, 'never-with');
  const r = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--config', config({ fora: { interval: 2, start_step: 1 } }), '--with', 'fora.interval=3', 'qkv', '--explain']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^1\. qkv \(factorizer\)/);
  assert.match(r.stdout, /\n2\. fora \(cacher\).*\n   hyperparameters: \{"interval":3,"startStep":1[,}]/);
  const flagsOnly = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--with', 'int8Dynamic.exclude=*norm*,proj_out', '--explain']);
  assert.equal(flagsOnly.code, 0, flagsOnly.stderr);
  assert.match(flagsOnly.stdout, /1\. int8Dynamic \(quantizer\).*\n   hyperparameters: \{[^\n]*"exclude":\["\*norm\*","proj_out"\]/);
  const none = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--out', out]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /--config <smash\.json>, --with .*\[MISSING_OPTION\]/);
  assert.ok(!existsSync(out));
});

test('smash optimize writes a bundle that smash generate runs; a bad config fails naming the key', async () => {
  const out = join(tmp.dir, 'bundle');
  const r = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--config', config({ int8Dynamic: {}, qkv: {} }), '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /smashed qkv \+ int8Dynamic into /);
  assert.ok(existsSync(join(out, 'smash_config.json')));
  const png = join(tmp.dir, 'fox.png');
  const g = await runCli(['generate', '--model', out, '--prompt', 'a fox', '--steps', '2', '--width', '32', '--height', '32', '--max-sequence-length', '32', '--seed', '1', '--out', png]);
  assert.equal(g.code, 0, g.stderr);
  assert.ok(existsSync(png));
  const bad = await runCli(['optimize', '--model', fixture('pipelines', 'flux-tiny'), '--config', config({ int8Dynamic: { conv: 'qdq' } }), '--out', join(tmp.dir, 'x')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /int8Dynamic\.conv: must be one of "none", "convInteger".*\[BAD_HYPERPARAMETER\]/);
});

test('smash generate --config and --with, a cacher: the report lists, per step and branch, the parts computed and reused', async () => {
  const report = join(tmp.dir, 'fora-report.json');
  // the file's interval with a --with flag's startStep
  const r = await runCli(['generate', '--model', fixture('pipelines', 'flux-tiny'), '--config', config({ fora: { interval: 2 } }), '--with', 'fora.startStep=1', '--prompt', 'a fox', '--steps', '6',
    '--width', '32', '--height', '32', '--max-sequence-length', '32', '--seed', '1', '--out', join(tmp.dir, 'fora.png'), '--report', report]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { cache: { step: number; branch: string; computed: string[]; reused: string[]; ms: number }[]; settings: { smash: Record<string, unknown> } };
  assert.deepEqual(Object.keys(rep.settings.smash), ['fora']);
  assert.deepEqual(rep.cache.map((c) => c.step), [0, 1, 2, 3, 4, 5]);
  // startStep 1, interval 2: steps 0, 1, 3, 5 compute; 2 and 4 reuse
  assert.deepEqual(rep.cache.map((c) => c.reused.length > 0), [false, false, true, false, true, false]);
  for (const c of rep.cache) assert.ok(c.computed.length + c.reused.length > 0 && c.ms > 0 && c.branch);
});
