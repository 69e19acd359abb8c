import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { cacheRoot } from '../../pipelines/cache.js';
import { clearCache, listCache, type CacheEntry } from '../../pipelines/cache-admin.js';

function size(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 2 ** 10).toFixed(0)} KiB`;
}

function line(e: CacheEntry): string {
  const what = e.complete ? `${e.source ?? '(unknown source)'} ${e.dtype ?? ''}${e.variant ? ` ${e.variant}` : ''}` : '(incomplete)';
  return `${e.key}  ${size(e.bytes).padStart(10)}  last used ${e.lastUsed.toISOString().slice(0, 16).replace('T', ' ')}  ${what}`;
}

export function registerCache(p: Command) {
  const c = p.command('cache').description(`the conversion cache of diffusers folders: ${join(cacheRoot(), 'pipelines')} (set SMASH_CACHE to move it)`);
  c.command('list')
    .description('entries with their size, source folder and last use')
    .option('--json', 'print JSON')
    .action((o: { json?: boolean }) => {
      const entries = listCache();
      if (o.json) return void process.stdout.write(`${JSON.stringify({ root: cacheRoot(), entries }, null, 2)}\n`);
      const total = entries.reduce((a, e) => a + e.bytes, 0);
      process.stdout.write(`${cacheRoot()}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${size(total)}\n${entries.map((e) => `  ${line(e)}\n`).join('')}`);
    });
  c.command('clear')
    .description('remove entries: all, the given keys, or those unused for some days')
    .argument('[keys...]', 'cache keys (a unique prefix is enough)')
    .option('--older-than <days>', 'only entries not used for this many days')
    .action((keys: string[], o: { olderThan?: string }) => {
      const days = o.olderThan === undefined ? undefined : Number(o.olderThan);
      if (days !== undefined && !(Number.isFinite(days) && days >= 0)) throw new ConfigError('BAD_OPTION', `--older-than ${o.olderThan} is not a number of days`, 'older-than');
      const gone = clearCache({ keys, olderThanDays: days });
      process.stdout.write(`removed ${gone.length} entr${gone.length === 1 ? 'y' : 'ies'}, ${size(gone.reduce((a, e) => a + e.bytes, 0))}\n`);
    });
}
