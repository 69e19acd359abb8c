/**
 * Safe reads of user folders: a file to read must be a regular file (a `model.onnx` linked to
 * /dev/zero would otherwise be read without bound), and a walk never follows a link out of the
 * folder or round a loop (a link to `/` took the cache-key walk through system folders).
 */
import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { ModelFormatError } from '../errors.js';
import { isWithin } from './paths.js';

/** A Node file-system error as a typed one: a loop, a missing file, anything else unreadable. */
export function fileError(e: unknown, path: string, what: string): ModelFormatError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ELOOP') return new ModelFormatError('SYMLINK_LOOP', `${what}: symbolic links form a loop`, { file: path, cause: e });
  if (code === 'ENOENT') return new ModelFormatError('FILE_MISSING', `${what} not found`, { file: path, cause: e });
  if (code === 'ENOTDIR') return new ModelFormatError('NOT_A_FOLDER', `${what}: a part of the path is a file, not a folder`, { file: path, cause: e });
  if (code === 'EISDIR') return new ModelFormatError('NOT_A_FILE', `${what}: is a folder, not a file`, { file: path, cause: e });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new ModelFormatError('PERMISSION_DENIED', `${what}: permission denied (${code})`, { file: path, cause: e });
  if (code === 'ENOSPC') return new ModelFormatError('NO_SPACE', `${what}: no space left on the device`, { file: path, cause: e });
  return new ModelFormatError('FILE_UNREADABLE', `${what} cannot be read (${code ?? (e as Error)?.message})`, { file: path, cause: e });
}

/** A raw Node file-system error (it has an errno `code` and a `syscall`). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

function kindOf(st: Stats): string {
  return st.isDirectory() ? 'folder' : st.isCharacterDevice() || st.isBlockDevice() ? 'device' : st.isFIFO() ? 'pipe' : st.isSocket() ? 'socket' : 'special file';
}

/** Stats `path` (following links) and throws unless it is a regular file. */
export function checkRegularFile(path: string, what: string): Stats {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    throw fileError(e, path, what);
  }
  if (!st.isFile()) throw new ModelFormatError('NOT_A_FILE', `${what} is not a regular file (a ${kindOf(st)})`, { file: path });
  return st;
}

export interface WalkedFile {
  /** path relative to the root, '/'-separated */
  path: string;
  size: number;
  mtimeMs: number;
}

/**
 * Every regular file under `root`, sorted by path; dot-entries skipped. Links to files are
 * followed wherever they point (Hugging Face snapshots link into a blob store); links to folders
 * only when the folder lies inside `root` and has not been seen; devices and pipes are skipped.
 */
export function walkFiles(root: string): WalkedFile[] {
  const out: WalkedFile[] = [];
  const realRoot = realpathSync(root);
  const seen = new Set<string>([realRoot]);
  const walk = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      if (name.startsWith('.')) continue;
      const p = join(abs, name);
      const r = rel ? `${rel}/${name}` : name;
      let st: Stats;
      try {
        st = statSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && lstatSync(p).isSymbolicLink()) continue; // a dangling link
        throw fileError(e, p, 'a file in the model folder');
      }
      if (st.isFile()) out.push({ path: r, size: st.size, mtimeMs: Math.trunc(st.mtimeMs) });
      else if (st.isDirectory()) {
        const real = realpathSync(p);
        if (seen.has(real) || !isWithin(real, realRoot)) continue;
        seen.add(real);
        walk(p, r);
      }
    }
  };
  walk(realRoot, '');
  return out;
}
