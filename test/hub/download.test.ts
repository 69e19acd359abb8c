// Hub downloads against a local server with the Hub's routes and headers (no Hub access here).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { ConfigError, ModelFormatError } from '../../src/errors.js';
import { hubCacheDir } from '../../src/hub/download.js';
import { downloadPipeline } from '../../src/pipelines/hub.js';
import { loadPipeline } from '../../src/pipelines/loader.js';
import { fixture } from '../helpers.js';
import { runCli } from '../cli/run-cli.js';
import { tempDir } from '../pipelines/fixtures.js';

const tmp = tempDir('hub');
const SHA = 'a'.repeat(39) + '1';
const TOKEN = 'hf_secret';

/** repo id -> path -> bytes; `gated` repos answer 401 without the token. */
const repos = new Map<string, Map<string, Buffer>>();
const gated = new Set<string>();
const log: { method: string; url: string; range?: string }[] = [];

function filesOf(dir: string, prefix = ''): [string, Buffer][] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesOf(join(dir, e.name), `${prefix}${e.name}/`) : [[`${prefix}${e.name}`, readFileSync(join(dir, e.name))] as [string, Buffer]],
  );
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = decodeURIComponent(req.url ?? '');
  log.push({ method: req.method ?? '', url, range: req.headers.range });
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url);
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
  const repo = api?.[1] ?? resolve?.[1];
  const files = repo ? repos.get(repo) : undefined;
  if (!files) return void res.writeHead(404, { 'X-Error-Code': 'RepoNotFound' }).end();
  if (gated.has(repo!) && req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401, { 'X-Error-Code': 'GatedRepo' }).end('gated');
  if (api) {
    if (api[2] !== 'main' && api[2] !== SHA) return void res.writeHead(404, { 'X-Error-Code': 'RevisionNotFound' }).end();
    return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: repo, sha: SHA, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) }));
  }
  const body = files.get(resolve![3]!);
  if (!body) return void res.writeHead(404, { 'X-Error-Code': 'EntryNotFound' }).end();
  const headers = { ETag: `"${createHash('sha256').update(body).digest('hex')}"`, 'X-Repo-Commit': SHA, 'Accept-Ranges': 'bytes' };
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && req.method === 'GET') {
    const from = Number(range[1]);
    if (from >= body.length) return void res.writeHead(416, headers).end();
    const part = body.subarray(from);
    return void res.writeHead(206, { ...headers, 'Content-Length': part.length, 'Content-Range': `bytes ${from}-${body.length - 1}/${body.length}` }).end(part);
  }
  res.writeHead(200, { ...headers, 'Content-Length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}

let server: Server;
let endpoint = '';

before(async () => {
  const sd = new Map(filesOf(fixture('pipelines', 'sd15-tiny')));
  // what a real repository also holds and a pipeline does not need
  sd.set('unet/diffusion_pytorch_model.fp16.safetensors', sd.get('unet/diffusion_pytorch_model.safetensors')!);
  sd.set('unet/diffusion_pytorch_model.bin', Buffer.from('pickle'));
  sd.set('README.md', Buffer.from('# tiny'));
  sd.set('safety_checker/model.safetensors', Buffer.from('x'));
  repos.set('tiny/sd15', sd);
  repos.set('gated/sd15', sd);
  gated.add('gated/sd15');
  const broken = new Map(sd);
  broken.delete('unet/diffusion_pytorch_model.safetensors');
  broken.delete('unet/diffusion_pytorch_model.fp16.safetensors');
  repos.set('tiny/no-weights', broken);
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  tmp.cleanup();
});

describe('Hub downloads', () => {
  const cacheDir = join(tmp.dir, 'hub');

  test('a fresh download: the Hub cache layout, only the files the pipeline reads; loadPipeline("owner/repo") runs it', async () => {
    log.length = 0;
    const snap = await downloadPipeline('tiny/sd15', { endpoint, cacheDir });
    const root = join(cacheDir, 'models--tiny--sd15');
    assert.equal(snap, join(root, 'snapshots', SHA));
    assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), SHA);
    const want = ['model_index.json', 'scheduler/scheduler_config.json', 'text_encoder/config.json', 'text_encoder/model.safetensors',
      'tokenizer/merges.txt', 'tokenizer/special_tokens_map.json', 'tokenizer/tokenizer_config.json', 'tokenizer/vocab.json',
      'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors'];
    const got = filesOf(snap).map(([p]) => p).sort();
    assert.deepEqual(got, want);
    for (const f of want) {
      // snapshot entries link into blobs named by their ETag, as huggingface_hub lays them out
      assert.ok(lstatSync(join(snap, f)).isSymbolicLink(), f);
      const target = readlinkSync(join(snap, f));
      const body = repos.get('tiny/sd15')!.get(f)!;
      assert.equal(relative(join(root, 'blobs'), join(snap, f, '..', target)), createHash('sha256').update(body).digest('hex'));
      assert.deepEqual(readFileSync(join(snap, f)), body);
    }
    assert.ok(!log.some((r) => /fp16|\.bin|README|safety/.test(r.url)), 'nothing else was requested');
    assert.equal(log[0]!.url, '/api/models/tiny/sd15/revision/main');
    const pipe = await loadPipeline('tiny/sd15', { hub: { endpoint, cacheDir }, cacheDir: join(tmp.dir, 'smash'), threads: 1 });
    try {
      const r = await pipe.generate({ prompt: 'a cat', steps: 1, width: 32, height: 32, seed: 1 });
      assert.deepEqual(r.images.dims, [1, 3, 32, 32]);
      assert.equal(pipe.source.dir, snap);
    } finally {
      await pipe.release();
    }
  });

  test('a partial file is resumed with a Range request', async () => {
    const cache = join(tmp.dir, 'resume');
    const body = repos.get('tiny/sd15')!.get('unet/diffusion_pytorch_model.safetensors')!;
    const etag = createHash('sha256').update(body).digest('hex');
    const blobs = join(cache, 'models--tiny--sd15', 'blobs');
    mkdirSync(blobs, { recursive: true });
    const half = Math.floor(body.length / 2);
    writeFileSync(join(blobs, `${etag}.incomplete`), body.subarray(0, half));
    log.length = 0;
    const snap = await downloadPipeline('tiny/sd15', { endpoint, cacheDir: cache });
    const get = log.find((r) => r.method === 'GET' && r.url.endsWith('unet/diffusion_pytorch_model.safetensors'));
    assert.equal(get?.range, `bytes=${half}-`);
    assert.deepEqual(readFileSync(join(snap, 'unet', 'diffusion_pytorch_model.safetensors')), body);
    assert.ok(!existsSync(join(blobs, `${etag}.incomplete`)));
  });

  test('a cache hit: no file is fetched again, and without a network the cached snapshot serves', async () => {
    log.length = 0;
    const snap = await downloadPipeline('tiny/sd15', { endpoint, cacheDir });
    assert.deepEqual(log.map((r) => r.url), ['/api/models/tiny/sd15/revision/main'], 'only the revision lookup');
    // a port nobody listens on: the network is gone
    const dead = `http://127.0.0.1:${(server.address() as AddressInfo).port + 1}`;
    assert.equal(await downloadPipeline('tiny/sd15', { endpoint: dead, cacheDir }), snap);
    assert.equal(await downloadPipeline('tiny/sd15', { offline: true, cacheDir }), snap);
    const pipe = await loadPipeline('tiny/sd15', { hub: { endpoint: dead, cacheDir }, cacheDir: join(tmp.dir, 'smash'), threads: 1 });
    await pipe.release();
    // never downloaded and no network: a clear error
    await assert.rejects(downloadPipeline('tiny/other', { endpoint: dead, cacheDir }), (e: unknown) => e instanceof ConfigError && e.code === 'HUB_OFFLINE' && e.message.includes(dead) && e.message.includes('not in the cache'));
  });

  test('a gated repository without a token says how to get access; with HF_TOKEN it downloads', async () => {
    const cache = join(tmp.dir, 'gated');
    const saved = process.env.HF_TOKEN;
    delete process.env.HF_TOKEN;
    try {
      await assert.rejects(downloadPipeline('gated/sd15', { endpoint, cacheDir: cache }), (e: unknown) =>
        e instanceof ConfigError && e.code === 'HUB_GATED' && e.key === 'token' && /HTTP 401/.test(e.message) && /HF_TOKEN/.test(e.message) && /gated\/sd15/.test(e.message));
      process.env.HF_TOKEN = TOKEN;
      const snap = await downloadPipeline('gated/sd15', { endpoint, cacheDir: cache });
      assert.ok(existsSync(join(snap, 'unet', 'config.json')));
    } finally {
      if (saved === undefined) delete process.env.HF_TOKEN;
      else process.env.HF_TOKEN = saved;
    }
  });

  test('a missing file, repository or revision is named', async () => {
    await assert.rejects(downloadPipeline('tiny/no-weights', { endpoint, cacheDir: join(tmp.dir, 'missing') }), (e: unknown) =>
      e instanceof ModelFormatError && e.code === 'HUB_FILE_MISSING' && /unet\/ has no plain safetensors weights \(only PyTorch \.bin/.test(e.message));
    await assert.rejects(downloadPipeline('tiny/sd15', { endpoint, cacheDir: join(tmp.dir, 'missing'), variant: 'bf16' }), (e: unknown) =>
      e instanceof ModelFormatError && /no 'bf16' safetensors weights/.test(e.message));
    await assert.rejects(downloadPipeline('tiny/nope', { endpoint, cacheDir: join(tmp.dir, 'missing') }), (e: unknown) => e instanceof ConfigError && e.code === 'HUB_NOT_FOUND');
    await assert.rejects(downloadPipeline('tiny/sd15', { endpoint, cacheDir: join(tmp.dir, 'missing'), revision: 'v9' }), (e: unknown) => e instanceof ConfigError && e.code === 'HUB_REVISION' && e.key === 'revision');
  });

  test('the cache folder follows HF_HUB_CACHE, then HF_HOME, as huggingface_hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/x/hub', HF_HOME: '/y' }), '/x/hub');
    assert.equal(hubCacheDir({ HF_HOME: '/y' }), join('/y', 'hub'));
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/z' }), join('/z', 'huggingface', 'hub'));
  });

  test('smash generate --model owner/repo --revision: HF_ENDPOINT and HF_HUB_CACHE honoured; a gated repo fails in one line', async () => {
    const keys = ['HF_ENDPOINT', 'HF_HUB_CACHE', 'SMASH_CACHE', 'HF_TOKEN'] as const;
    const saved = keys.map((k) => process.env[k]);
    process.env.HF_ENDPOINT = endpoint;
    process.env.HF_HUB_CACHE = join(tmp.dir, 'cli-hub');
    process.env.SMASH_CACHE = join(tmp.dir, 'smash');
    delete process.env.HF_TOKEN;
    try {
      const out = join(tmp.dir, 'cli.png');
      const r = await runCli(['generate', '--model', 'tiny/sd15', '--revision', SHA, '--prompt', 'a cat', '--steps', '1', '--width', '32', '--height', '32', '--threads', '1', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(existsSync(out));
      assert.ok(existsSync(join(tmp.dir, 'cli-hub', 'models--tiny--sd15', 'snapshots', SHA, 'unet', 'config.json')));
      const g = await runCli(['generate', '--model', 'gated/sd15', '--prompt', 'a cat', '--out', join(tmp.dir, 'g.png')]);
      assert.equal(g.code, 1);
      assert.match(g.stderr, /gated or private .*HF_TOKEN.* \[HUB_GATED\]/);
    } finally {
      keys.forEach((k, i) => (saved[i] === undefined ? delete process.env[k] : (process.env[k] = saved[i])));
    }
  });
});
