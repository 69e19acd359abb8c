// Issue 9, case 14: `smash cache list|clear`, and --help says where the cache is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { listCache } from '../../src/pipelines/cache-admin.js';
import { runCli } from './run-cli.js';
import { fixture } from '../helpers.js';
import { tempCache } from '../pipelines/fixtures.js';

const tmp = tempCache('cache-cmd');

const gen = (model: string, out: string) => runCli(['generate', '--model', model, '--prompt', 'a cat', '--steps', '1', '--width', '32', '--height', '32',
  '--seed', '1', '--threads', '1', '--out', join(tmp.dir, out)]);

test('cache list shows entries with size, source and last use; clear removes by key, age, or all', async () => {
  const empty = await runCli(['cache', 'list']);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /0 entries/);

  const sd = fixture('pipelines', 'sd15-tiny');
  assert.equal((await gen(sd, 'a.png')).code, 0);
  assert.equal((await gen(fixture('pipelines', 'flux-tiny'), 'b.png')).code, 0);
  const list = await runCli(['cache', 'list']);
  assert.match(list.stdout, /2 entries, [\d.]+ MiB/);
  assert.ok(list.stdout.includes(sd), list.stdout);
  assert.match(list.stdout, /last used \d{4}-\d\d-\d\d \d\d:\d\d/);
  const json = JSON.parse((await runCli(['cache', 'list', '--json'])).stdout);
  assert.equal(json.entries.length, 2);
  assert.ok(json.entries.every((e: { bytes: number }) => e.bytes > 10_000));

  // a cache hit refreshes the last use: age one entry, use the other, clear by age
  const entries = listCache();
  const sdEntry = entries.find((e) => e.source === sd)!;
  const other = entries.find((e) => e.source !== sd)!;
  const old = new Date(Date.now() - 30 * 86_400_000);
  for (const e of entries) utimesSync(join(e.dir, 'smash-cache.json'), old, old);
  assert.equal((await gen(sd, 'c.png')).code, 0);
  const cleared = await runCli(['cache', 'clear', '--older-than', '7']);
  assert.match(cleared.stdout, /removed 1 entry/);
  assert.deepEqual(listCache().map((e) => e.key), [sdEntry.key]);
  assert.ok(!listCache().some((e) => e.key === other.key));

  // by key prefix; then all (abandoned temporary folders go too)
  mkdirSync(join(tmp.dir, 'cache', 'pipelines', '.abc.tmp-999999999-1'));
  assert.match((await runCli(['cache', 'clear', sdEntry.key.slice(0, 8)])).stdout, /removed 1 entry/);
  assert.equal(listCache().length, 0);
  const bad = await runCli(['cache', 'clear', 'zzzz']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /\[CACHE_KEY\]/);
});

test('--help says where the cache is and how to clear it', async () => {
  const chunks: string[] = [];
  const r = await runCli(['--help']);
  chunks.push(r.stdout, r.stderr);
  const text = chunks.join('');
  assert.match(text, /\$SMASH_CACHE\/pipelines/);
  assert.match(text, /smash cache list\|clear/);
  const sub = await runCli(['cache', '--help']);
  assert.ok((sub.stdout + sub.stderr).includes(join(tmp.dir, 'cache', 'pipelines')));
});
