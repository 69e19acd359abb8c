/**
 * Names read from files that become paths: a model_index.json component key is joined to the
 * pipeline folder when reading and to the output folder when writing, so it must be one plain
 * folder name, never `..`, a separator or an absolute path (a crafted key would otherwise read
 * and write outside both folders).
 */
import { ModelFormatError } from '../errors.js';

// diffusers' component names are Python attribute names; allow dots and dashes, never a leading dot
const PLAIN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Throws COMPONENT_NAME unless `name` is a plain folder name (no separator, no leading dot). */
export function checkComponentName(name: string, file: string): string {
  if (!PLAIN.test(name)) {
    throw new ModelFormatError(
      'COMPONENT_NAME',
      `component key ${JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name)} is not a plain folder name (letters, digits, '_', '.', '-'; no path separators or leading dot)`,
      { file },
    );
  }
  return name;
}
