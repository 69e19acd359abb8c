/** Path relations that hold after symlinks are resolved (a folder may not exist yet). */
import { realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';

/** `realpath` of `p`, or of its deepest existing ancestor joined with the rest. */
export function realResolve(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realResolve(parent), basename(abs));
  }
}

/** True when `inner` is `outer` or lies below it (both real-resolved). */
export function isWithin(inner: string, outer: string): boolean {
  const rel = relative(realResolve(outer), realResolve(inner));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}
