/**
 * The on-disk cache of converted pipelines.
 *
 * Where: `$SMASH_CACHE/pipelines/<key>/` when SMASH_CACHE is set, else `~/.cache/smash/pipelines/<key>/`
 * (or `<cacheDir>/pipelines/<key>/` when the caller passes one). Each entry is a `smash convert`
 * output (Optimum's layout) plus `smash-cache.json` describing its source.
 *
 * Key: sha256 over our package version, the conversion options, and every file under the source
 * folder (relative path, size, mtime; links to files followed, links to folders only inside it;
 * dot-entries skipped). Editing, adding or
 * removing a source file, or upgrading the package, gives a new key, so a stale entry is never
 * used; old entries stay until the user deletes them.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { walkFiles } from '../fs/files.js';
import { dropTemp, makeTempSibling, sweepTemps } from '../fs/temp.js';
import { convert, type ConvertOptions } from '../models/convert.js';

let version: string | undefined;

/** Our package version (package.json two levels above this module, in src/ and dist/ alike). */
export function packageVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
      version = String(pkg.version ?? '0.0.0');
    } catch {
      version = '0.0.0';
    }
  }
  return version;
}

/** The cache root: `cacheDir`, else $SMASH_CACHE, else ~/.cache/smash. */
export function cacheRoot(cacheDir?: string): string {
  return resolve(cacheDir ?? process.env.SMASH_CACHE ?? join(homedir(), '.cache', 'smash'));
}

/** Relative path, size and mtime of every file under `dir`, sorted by path (see walkFiles: links out of the folder are not walked). */
export function listSourceFiles(dir: string): { path: string; size: number; mtimeMs: number }[] {
  return walkFiles(resolve(dir));
}

/** The cache key of a source folder for the given conversion options. */
export function cacheKey(src: string, opts: Pick<ConvertOptions, 'dtype' | 'variant'> = {}): string {
  const h = createHash('sha256');
  h.update(`smash-diffusion ${packageVersion()}\n`);
  h.update(`dtype=${opts.dtype ?? 'float32'} variant=${opts.variant ?? ''}\n`);
  for (const f of listSourceFiles(src)) h.update(`${f.path}\0${f.size}\0${f.mtimeMs}\n`);
  return h.digest('hex').slice(0, 32);
}

function touch(file: string): void {
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    // a read-only cache still serves
  }
}

export interface CachedConversion {
  /** the ONNX folder to load */
  dir: string;
  key: string;
  /** false when the entry already existed */
  converted: boolean;
}

/**
 * Returns the cached ONNX conversion of a diffusers folder, converting it first when absent.
 * Conversion goes to a private temporary folder renamed into place, so concurrent processes
 * never see a half-written entry (the loser of a race drops its copy).
 */
export function ensureConverted(
  src: string,
  opts: Pick<ConvertOptions, 'dtype' | 'variant' | 'onProgress' | 'onWarning'> & { cacheDir?: string } = {},
): CachedConversion {
  const key = cacheKey(src, opts);
  const root = join(cacheRoot(opts.cacheDir), 'pipelines');
  const dir = join(root, key);
  if (existsSync(join(dir, 'smash-cache.json'))) {
    touch(join(dir, 'smash-cache.json')); // last use, for `smash cache list|clear`
    return { dir, key, converted: false };
  }
  mkdirSync(root, { recursive: true });
  sweepTemps(root); // entries abandoned by interrupted conversions
  const tmp = makeTempSibling(dir);
  try {
    convert(src, tmp, { dtype: opts.dtype, variant: opts.variant, onProgress: opts.onProgress, onWarning: opts.onWarning, force: true });
    writeFileSync(
      join(tmp, 'smash-cache.json'),
      `${JSON.stringify({ source: resolve(src), key, version: packageVersion(), dtype: opts.dtype ?? 'float32', variant: opts.variant ?? null, created: new Date().toISOString() }, null, 2)}\n`,
    );
    // an incomplete folder under the final name (no smash-cache.json) is replaced
    if (existsSync(dir) && !existsSync(join(dir, 'smash-cache.json'))) rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(join(dir, 'smash-cache.json'))) throw e;
    }
  } finally {
    dropTemp(tmp);
  }
  return { dir, key, converted: true };
}
