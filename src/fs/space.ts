/** Free-space checks before writing large outputs, so a write never dies half-way on a full disk. */
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.js';
import { realResolve } from './paths.js';

/** Bytes available to this user on the file system that holds `path` (or its nearest existing ancestor). */
export function freeBytes(path: string): number | undefined {
  let p = realResolve(path);
  for (;;) {
    try {
      const s = statfsSync(p);
      return Number(s.bavail) * Number(s.bsize);
    } catch {
      const up = dirname(p);
      if (up === p) return undefined;
      p = up;
    }
  }
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** Throws NO_SPACE when `bytes` (plus a 1% / 64 MiB margin) will not fit where `path` goes. */
export function checkFreeSpace(path: string, bytes: number, what: string, option = 'out'): void {
  const free = freeBytes(path);
  if (free === undefined) return;
  const need = bytes + Math.max(bytes * 0.01, 64 * 2 ** 20);
  if (need > free) {
    throw new ConfigError('NO_SPACE', `${what} needs about ${gib(bytes)} but only ${gib(free)} is free at ${path}`, option);
  }
}
