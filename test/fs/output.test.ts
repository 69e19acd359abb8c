// Issue 9, cases 1-3: component keys that escape the folder, --force that deletes too much,
// temporary folders left behind. Crafted folders are built here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { checkComponentName } from '../../src/fs/names.js';
import { checkFreeSpace, freeBytes } from '../../src/fs/space.js';
import { makeTempSibling, sweepTemps } from '../../src/fs/temp.js';
import { runCli } from '../cli/run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('hostile');

let n = 0;
const fresh = (tag: string) => {
  const d = join(tmp.dir, `${tag}-${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('1: a model_index.json key that is not a plain folder name is refused by convert and generate', async () => {
  for (const bad of ['../../escaped', '../escaped', '/etc', 'a/b', 'a\\b', '.', '..', '.hidden', '']) {
    assert.throws(() => checkComponentName(bad, 'model_index.json'), (e: unknown) => e instanceof ModelFormatError && e.code === 'COMPONENT_NAME');
  }
  for (const good of ['unet', 'text_encoder_2', 'vae.v2', 'image-encoder']) assert.equal(checkComponentName(good, 'x'), good);

  const root = fresh('escape');
  const model = join(root, 'a', 'b', 'model');
  cpSync(fixture('pipelines', 'sd15-tiny'), model, { recursive: true });
  // what the key would reach: a folder two levels above the pipeline
  mkdirSync(join(root, 'a', 'escaped'));
  writeFileSync(join(root, 'a', 'escaped', 'secret.txt'), 'not yours');
  const index = JSON.parse(readFileSync(join(model, 'model_index.json'), 'utf8'));
  index['../../escaped'] = ['transformers', 'CLIPTokenizer'];
  writeFileSync(join(model, 'model_index.json'), JSON.stringify(index));

  const out = join(root, 'a', 'b', 'out', 'onnx');
  const c = await runCli(['convert', model, '--out', out]);
  assert.equal(c.code, 1, c.stderr);
  assert.match(c.stderr, /component key "\.\.\/\.\.\/escaped" is not a plain folder name.*model_index\.json \[COMPONENT_NAME\]/);
  assert.equal(existsSync(join(root, 'a', 'b', 'out')), false, 'nothing written');
  assert.equal(existsSync(join(root, 'escaped')), false, 'nothing written outside --out');

  const g = await runCli(['generate', '--model', model, '--prompt', 'x', '--steps', '1', '--out', join(root, 'x.png')]);
  assert.equal(g.code, 1, g.stderr);
  assert.match(g.stderr, /\[COMPONENT_NAME\]/);
  assert.equal(existsSync(join(tmp.dir, 'cache', 'pipelines')) && readdirSync(join(tmp.dir, 'cache', 'pipelines')).length > 0, false, 'no cache entry');
});

test('2: --force never deletes a folder holding the source or files smash did not write', async () => {
  const parent = fresh('force');
  const model = join(parent, 'model');
  cpSync(fixture('models', 'clip-text-tiny'), model, { recursive: true });
  writeFileSync(join(parent, 'sibling.txt'), 'keep me');
  const before = readdirSync(model).sort();

  // the output equals or contains the source: refused, with or without --force
  for (const out of [parent, model]) {
    const r = await runCli(['convert', model, '--out', out, '--force']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /is or contains the source.*\[OUT_CONTAINS_SOURCE\]/);
  }
  assert.deepEqual(readdirSync(model).sort(), before);
  assert.equal(readFileSync(join(parent, 'sibling.txt'), 'utf8'), 'keep me');

  // a folder with unrelated files is not replaced by --force; an earlier output of ours is
  const out = join(parent, 'out');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'mine');
  const r1 = await runCli(['convert', model, '--out', out, '--force']);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, /holds files smash did not write \(notes\.txt\), it has no \.smash-output\.json.*\[OUT_NOT_OURS\]/);
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');

  const ours = join(parent, 'ours');
  assert.equal((await runCli(['convert', model, '--out', ours])).code, 0);
  assert.equal((await runCli(['convert', model, '--out', ours, '--force'])).code, 0);
  writeFileSync(join(ours, 'added-later.txt'), 'user file');
  const r2 = await runCli(['convert', model, '--out', ours, '--force']);
  assert.match(r2.stderr, /added-later\.txt.*\[OUT_NOT_OURS\]/);

  // create-random: same rule
  const cr = join(parent, 'random');
  mkdirSync(cr);
  writeFileSync(join(cr, 'keep.txt'), 'x');
  const args = ['create-random', '--config', 'clip-l', '--width-mult', '0.05', '--depth', '1', '--out', cr, '--force'];
  const r3 = await runCli(args);
  assert.equal(r3.code, 1);
  assert.match(r3.stderr, /\[OUT_NOT_OURS\]/);
  assert.ok(existsSync(join(cr, 'keep.txt')));
  // a folder with no marker at all (not ours) is refused too
  const plain = join(parent, 'plain');
  mkdirSync(plain);
  writeFileSync(join(plain, 'config.json'), '{}');
  assert.match((await runCli([...args.slice(0, -3), '--out', plain, '--force'])).stderr, /holds files smash did not write \(config\.json\).*\[OUT_NOT_OURS\]/);
});

test('3: abandoned temporary folders are swept; errors leave none; free space is checked first', async () => {
  const parent = fresh('temps');
  const dead = deadPid();
  const stale = join(parent, `.out.tmp-${dead}-1700000000000`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'half.onnx_data'), 'x');
  // a temporary folder of a process still running (this one's parent shell) is left alone
  const busy = join(parent, `.other.tmp-${process.ppid}-1700000000000`);
  mkdirSync(busy);
  const r = await runCli(['convert', fixture('models', 'clip-text-tiny'), '--out', join(parent, 'out')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(stale), false, 'stale temp swept');
  assert.ok(existsSync(busy), 'a live process\'s temp is kept');

  // the conversion cache: an interrupted entry is swept by the next load
  const pipelines = join(tmp.dir, 'cache', 'pipelines');
  mkdirSync(pipelines, { recursive: true });
  const staleEntry = join(pipelines, `.0123456789abcdef.tmp-${dead}-1700000000000`);
  mkdirSync(staleEntry);
  const g = await runCli(['generate', '--model', fixture('pipelines', 'sd15-tiny'), '--prompt', 'a cat', '--steps', '1', '--width', '32', '--height', '32',
    '--seed', '1', '--threads', '1', '--out', join(parent, 'cat.png')]);
  assert.equal(g.code, 0, g.stderr);
  assert.equal(existsSync(staleEntry), false);
  assert.deepEqual(readdirSync(pipelines).filter((e) => e.startsWith('.')), [], 'no temporary folder left in the cache');

  // a conversion that fails part-way removes its temporary folder
  const broken = join(parent, 'broken');
  cpSync(fixture('pipelines', 'sd15-tiny'), broken, { recursive: true });
  writeFileSync(join(broken, 'vae', 'diffusion_pytorch_model.safetensors'), 'truncated');
  const b = await runCli(['convert', broken, '--out', join(parent, 'broken-out')]);
  assert.equal(b.code, 1);
  assert.deepEqual(readdirSync(parent).filter((e) => e.startsWith('.') && e !== `.other.tmp-${process.ppid}-1700000000000`), []);

  // makeTempSibling registers the folder; sweepTemps leaves this process's own
  const own = makeTempSibling(join(parent, 'mine'));
  assert.deepEqual(sweepTemps(parent), []);
  assert.ok(existsSync(own));

  // free space: a write that cannot fit is refused before anything is written
  const free = freeBytes(parent)!;
  assert.ok(free > 0);
  assert.throws(() => checkFreeSpace(parent, free * 2, 'test write'), (e: unknown) => e instanceof ConfigError && e.code === 'NO_SPACE');
  checkFreeSpace(parent, 1024, 'test write');
  const huge = join(parent, 'huge');
  const h = await runCli(['create-random', '--pipeline', 'flux-dev', '--width-mult', '8', '--out', huge]);
  assert.equal(h.code, 1, h.stderr);
  assert.match(h.stderr, /needs about [\d.]+ GiB but only [\d.]+ GiB is free.*\[NO_SPACE\]/);
  assert.equal(existsSync(huge), false);
  assert.deepEqual(readdirSync(parent).filter((e) => e.startsWith('.huge')), []);
});

test('3: Ctrl-C or SIGTERM during create-random leaves no temporary folder', async () => {
  const { spawn } = await import('node:child_process');
  const { dirname: dir } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const main = join(dir(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.ts');
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const parent = fresh(`signal-${signal}`);
    const out = join(parent, 'clip');
    const child = spawn(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(main)}).then((m) => m.main(process.argv.slice(1))).then((c) => process.exit(c))`,
      'create-random', '--config', 'clip-l', '--out', out], { stdio: 'ignore' });
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    // wait until the temporary folder holds some output, then interrupt
    const t0 = Date.now();
    let temp: string | undefined;
    while (Date.now() - t0 < 60_000) {
      temp = readdirSync(parent).find((e) => e.startsWith('.clip.tmp-'));
      if (temp && readdirSync(join(parent, temp)).length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(temp, 'the temporary folder appeared');
    child.kill(signal);
    await exited;
    const t1 = Date.now();
    while (Date.now() - t1 < 5000 && readdirSync(parent).length) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(readdirSync(parent), [], `${signal}: nothing left behind`);
  }
});
