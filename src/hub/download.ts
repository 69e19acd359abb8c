/**
 * Downloads from the Hugging Face Hub into the cache layout of Python's huggingface_hub, so both
 * share files: `<cache>/models--owner--repo/{blobs/<etag>, snapshots/<commit>/<path> -> blob,
 * refs/<revision>}`. The cache is $HF_HUB_CACHE, else $HF_HOME/hub, else
 * ${XDG_CACHE_HOME:-~/.cache}/huggingface/hub; the endpoint $HF_ENDPOINT (https://huggingface.co);
 * the token $HF_TOKEN, else the file `huggingface-cli login` writes ($HF_HOME/token).
 * A partial blob (`<etag>.incomplete`) is resumed with an HTTP Range request. A file already in the
 * commit's snapshot is never fetched again; without a network (or with HF_HUB_OFFLINE=1) a cached
 * snapshot of the revision is used as it is.
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ConfigError, ModelFormatError } from '../errors.js';

export interface HubOptions {
  /** branch, tag or commit (default `main`) */
  revision?: string;
  /** default $HF_TOKEN or the saved login token */
  token?: string;
  /** default $HF_ENDPOINT or https://huggingface.co */
  endpoint?: string;
  /** default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub */
  cacheDir?: string;
  /** use the cache only (default: $HF_HUB_OFFLINE) */
  offline?: boolean;
  /** bytes of `file` written so far out of `total` */
  onProgress?: (file: string, done: number, total: number) => void;
}

/** A repository id as the Hub spells it: `owner/name`. */
export function isRepoId(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]*\/[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s) && !s.includes('..');
}

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  return join(hfHome(env), 'hub');
}

function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
}

function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HF_TOKEN) return env.HF_TOKEN;
  const file = env.HF_TOKEN_PATH ?? join(hfHome(env), 'token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim() || undefined;
  return undefined;
}

/** The folder of a repository in the cache. */
export function repoCacheDir(repo: string, cacheDir = hubCacheDir()): string {
  return join(cacheDir, `models--${repo.replace('/', '--')}`);
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * One repository revision: its commit and file list (`/api/models/{repo}/revision/{rev}`), and
 * files fetched into the cache on demand. `open()` resolves the revision, online or from the cache.
 */
export class HubRepo {
  readonly revision: string;
  readonly endpoint: string;
  readonly root: string;
  private readonly token?: string;
  /** the commit the revision resolved to */
  commit = '';
  /** repository files at that commit; null when opened from the cache alone */
  files: Set<string> | null = null;
  offline: boolean;

  constructor(readonly repo: string, private readonly opts: HubOptions = {}) {
    this.revision = opts.revision ?? 'main';
    if (!/^[\w.\-/]+$/.test(this.revision) || this.revision.includes('..')) throw new ConfigError('HUB_REVISION', `revision '${this.revision}' is not a branch, tag or commit name`, 'revision');
    this.endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
    this.token = opts.token ?? hubToken();
    this.root = repoCacheDir(repo, opts.cacheDir);
    const env = process.env.HF_HUB_OFFLINE;
    this.offline = opts.offline ?? (env !== undefined && ['1', 'true', 'yes', 'on'].includes(env.toLowerCase()));
  }

  /** The snapshot folder of the resolved commit. */
  get snapshot(): string {
    return join(this.root, 'snapshots', this.commit);
  }

  async open(): Promise<void> {
    if (!this.offline) {
      try {
        const r = await this.request(`${this.endpoint}/api/models/${this.repo}/revision/${encodeURIComponent(this.revision)}`, 'GET');
        const info = (await r.json()) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
        if (typeof info.sha !== 'string' || !COMMIT.test(info.sha)) throw new ModelFormatError('HUB_RESPONSE', `the Hub's answer for ${this.repo}@${this.revision} has no commit sha`, { file: this.endpoint });
        this.commit = info.sha;
        this.files = new Set((info.siblings ?? []).map((s) => String(s.rfilename)));
        if (this.revision !== this.commit) {
          mkdirSync(join(this.root, 'refs', dirname(this.revision)), { recursive: true });
          writeFileSync(join(this.root, 'refs', this.revision), this.commit);
        }
        mkdirSync(this.snapshot, { recursive: true });
        return;
      } catch (e) {
        if (!(e instanceof NetworkError)) throw e;
        this.offline = true;
        if (!this.fromCache()) throw this.offlineError(e.message);
        return;
      }
    }
    if (!this.fromCache()) throw this.offlineError('HF_HUB_OFFLINE is set');
  }

  private fromCache(): boolean {
    const ref = join(this.root, 'refs', this.revision);
    const commit = COMMIT.test(this.revision) ? this.revision : existsSync(ref) ? readFileSync(ref, 'utf8').trim() : '';
    if (!commit || !existsSync(join(this.root, 'snapshots', commit))) return false;
    this.commit = commit;
    return true;
  }

  private offlineError(why: string): ConfigError {
    return new ConfigError(
      'HUB_OFFLINE',
      `cannot reach the Hugging Face Hub at ${this.endpoint} (${why}) and ${this.repo}@${this.revision} is not in the cache ${this.root}: ` +
        'connect to the network (or set HF_ENDPOINT to a mirror), or copy the repository into that cache',
      'model',
    );
  }

  /** Whether the repository has `file` at the commit (the cache's snapshot when offline). */
  has(file: string): boolean {
    return this.files ? this.files.has(file) : existsSync(join(this.snapshot, file));
  }

  /** Files under `folder/` at the commit. */
  list(folder: string): string[] {
    return this.files ? [...this.files].filter((f) => f.startsWith(`${folder}/`)).sort() : [];
  }

  /** The local path of `file` in the snapshot, downloaded (or resumed) unless it is there. */
  async fetch(file: string): Promise<string> {
    try {
      return await this.fetchFile(file);
    } catch (e) {
      if (e instanceof NetworkError) throw new ConfigError('HUB_DOWNLOAD', `${this.repo}: cannot download ${file} from ${this.endpoint} (${e.message}); run again to resume`, 'model');
      throw e;
    }
  }

  private async fetchFile(file: string): Promise<string> {
    if (file.split('/').some((p) => p === '..' || p === '' || p.startsWith('.'))) throw new ModelFormatError('HUB_RESPONSE', `refusing the file name '${file}'`, { file: this.repo });
    const link = join(this.snapshot, file);
    if (existsSync(link)) return link;
    if (this.offline || !this.files) throw new ModelFormatError('HUB_FILE_MISSING', `${file} is not in the cached snapshot ${this.snapshot} (offline)`, { file: link });
    if (!this.files.has(file)) throw new ModelFormatError('HUB_FILE_MISSING', `${this.repo}@${this.revision} has no file ${file}`, { file: `${this.endpoint}/${this.repo}` });
    const url = `${this.endpoint}/${this.repo}/resolve/${this.commit}/${file.split('/').map(encodeURIComponent).join('/')}`;
    const head = await this.request(url, 'HEAD');
    const etag = normalizeEtag(head.headers.get('x-linked-etag') ?? head.headers.get('etag'));
    if (!etag || !/^[\w-]+$/.test(etag)) throw new ModelFormatError('HUB_RESPONSE', `no usable ETag for ${file}`, { file: url });
    const sizeHeader = head.headers.get('x-linked-size') ?? head.headers.get('content-length');
    const size = sizeHeader === null ? undefined : Number(sizeHeader);
    const blob = join(this.root, 'blobs', etag);
    if (!existsSync(blob)) await this.download(url, blob, file, size);
    mkdirSync(dirname(link), { recursive: true });
    if (lstatExists(link)) unlinkSync(link);
    symlinkSync(relative(dirname(link), blob), link);
    return link;
  }

  private async download(url: string, blob: string, file: string, size: number | undefined): Promise<void> {
    mkdirSync(dirname(blob), { recursive: true });
    const part = `${blob}.incomplete`;
    let have = existsSync(part) ? statSync(part).size : 0;
    if (size !== undefined && have > size) {
      rmSync(part);
      have = 0;
    }
    const res = await this.request(url, 'GET', have > 0 ? { Range: `bytes=${have}-` } : {}, have > 0 && have === size ? [416] : []);
    if (res.status === 416) {
      // the partial file is already whole
    } else {
      const resumed = res.status === 206;
      if (!resumed) have = 0;
      const total = size ?? (Number(res.headers.get('content-length')) + have || undefined);
      let done = have;
      const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
      body.on('data', (c: Buffer) => {
        done += c.length;
        this.opts.onProgress?.(file, done, total ?? done);
      });
      try {
        await streamPipeline(body, createWriteStream(part, { flags: resumed ? 'a' : 'w' }));
      } catch (e) {
        throw new NetworkError(`the download of ${file} broke off after ${done} bytes (run again to resume): ${(e as Error).message}`);
      }
    }
    const got = statSync(part).size;
    if (size !== undefined && got !== size) throw new ModelFormatError('HUB_SIZE', `${file}: downloaded ${got} bytes, the Hub says ${size} (run again to resume)`, { file: part });
    renameSync(part, blob);
  }

  /** One request with the token; Hub errors become typed errors saying what to do. */
  private async request(url: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}, okStatuses: number[] = []): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(url, { method, headers: { ...headers, ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), 'user-agent': 'smash-diffusion' } });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new NetworkError(cause?.code ?? cause?.message ?? (e as Error).message);
    }
    if (res.ok || okStatuses.includes(res.status)) return res;
    const code = res.headers.get('x-error-code');
    const what = `${this.repo}${this.revision === 'main' ? '' : `@${this.revision}`}`;
    if (res.status === 401 || res.status === 403) {
      const has = this.token ? 'the token given has no access to it' : 'no token was given';
      throw new ConfigError(
        'HUB_GATED',
        `${what} is gated or private (HTTP ${res.status}, ${has}): accept its conditions at ${this.endpoint}/${this.repo} while logged in, ` +
          'then set HF_TOKEN to a read token from https://huggingface.co/settings/tokens (or run `huggingface-cli login`)',
        'token',
      );
    }
    if (res.status === 404 && code === 'RevisionNotFound') throw new ConfigError('HUB_REVISION', `${this.repo} has no revision '${this.revision}'`, 'revision');
    if (res.status === 404 && (code === 'RepoNotFound' || url.includes('/api/models/'))) throw new ConfigError('HUB_NOT_FOUND', `no repository ${this.repo} on ${this.endpoint} (or it is private: set HF_TOKEN)`, 'model');
    if (res.status === 404) throw new ModelFormatError('HUB_FILE_MISSING', `${what}: ${url.split('/resolve/')[1] ?? url} is not in the repository`, { file: url });
    throw new NetworkError(`HTTP ${res.status} from ${url}`);
  }
}

/** A connection failure (or a server error): the cache may still serve. */
class NetworkError extends Error {}

function normalizeEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
