/**
 * Seeing and clearing the conversion cache (`smash cache list|clear`). Entries are folders
 * `<root>/pipelines/<key>/` with `smash-cache.json`; their last use is that file's mtime, which
 * every cache hit refreshes (see ensureConverted).
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { walkFiles } from '../fs/files.js';
import { sweepTemps } from '../fs/temp.js';
import { cacheRoot } from './cache.js';

export interface CacheEntry {
  key: string;
  dir: string;
  /** the diffusers folder it was converted from */
  source: string | null;
  dtype: string | null;
  variant: string | null;
  bytes: number;
  created: string | null;
  lastUsed: Date;
  /** false when the entry is incomplete (no smash-cache.json): a leftover, always clearable */
  complete: boolean;
}

/** The cache's entries, most recently used first. */
export function listCache(cacheDir?: string): CacheEntry[] {
  const root = join(cacheRoot(cacheDir), 'pipelines');
  if (!existsSync(root)) return [];
  const out: CacheEntry[] = [];
  for (const key of readdirSync(root)) {
    if (key.startsWith('.')) continue;
    const dir = join(root, key);
    if (!statSync(dir).isDirectory()) continue;
    const meta = join(dir, 'smash-cache.json');
    let info: Record<string, unknown> = {};
    const complete = existsSync(meta);
    try {
      if (complete) info = JSON.parse(readFileSync(meta, 'utf8')) as Record<string, unknown>;
    } catch {
      // unreadable metadata: listed with nulls
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : null);
    out.push({
      key, dir, complete,
      source: str(info.source), dtype: str(info.dtype), variant: str(info.variant), created: str(info.created),
      bytes: walkFiles(dir).reduce((a, f) => a + f.size, 0),
      lastUsed: statSync(complete ? meta : dir).mtime,
    });
  }
  return out.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
}

export interface ClearOptions {
  cacheDir?: string;
  /** only these keys (a unique prefix is enough) */
  keys?: string[];
  /** only entries not used for this many days */
  olderThanDays?: number;
}

/** Removes cache entries (all, by key, or by age) and abandoned temporary folders; returns what went. */
export function clearCache(o: ClearOptions = {}): CacheEntry[] {
  const entries = listCache(o.cacheDir);
  let chosen = entries;
  if (o.keys?.length) {
    chosen = o.keys.map((k) => {
      const m = entries.filter((e) => e.key.startsWith(k));
      if (m.length !== 1) throw new ConfigError('CACHE_KEY', `'${k}' matches ${m.length} cache entries (give more of the key; see smash cache list)`, 'key');
      return m[0]!;
    });
  }
  if (o.olderThanDays !== undefined) {
    const limit = Date.now() - o.olderThanDays * 86_400_000;
    chosen = chosen.filter((e) => e.lastUsed.getTime() < limit);
  }
  for (const e of chosen) rmSync(e.dir, { recursive: true, force: true });
  sweepTemps(join(cacheRoot(o.cacheDir), 'pipelines'));
  return chosen;
}
