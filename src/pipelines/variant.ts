/**
 * Checkpoint variants (`diffusion_pytorch_model.fp16.safetensors`): Hugging Face downloads often
 * hold only the fp16 files. When every model component has weights of one variant only, that
 * variant is the one to load, and the caller is told.
 */
import { readdirSync } from 'node:fs';

const VARIANT = /^(?:diffusion_pytorch_model|model)(?:\.([A-Za-z0-9_-]+)\.safetensors|\.safetensors\.index\.([A-Za-z0-9_-]+)\.json|-\d+-of-\d+\.([A-Za-z0-9_-]+)\.safetensors)$/;
const PLAIN = /^(?:diffusion_pytorch_model|model)(?:\.safetensors|\.safetensors\.index\.json)$/;

/** Variants a component folder offers, and whether it has plain (no-variant) weights. */
export function variantsOf(dir: string): { plain: boolean; variants: Set<string> } {
  const variants = new Set<string>();
  let plain = false;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    // a missing folder is reported where it is read
  }
  for (const n of names) {
    if (PLAIN.test(n)) plain = true;
    const m = VARIANT.exec(n);
    const v = m?.[1] ?? m?.[2] ?? m?.[3];
    if (v) variants.add(v);
  }
  return { plain, variants };
}

/** The variant to load when none was given: the single one that all model components have, if none has plain weights. */
export function onlyVariant(componentDirs: string[]): string | undefined {
  let common: string | undefined;
  for (const d of componentDirs) {
    const { plain, variants } = variantsOf(d);
    if (plain || variants.size !== 1) return undefined;
    const [v] = variants;
    if (common !== undefined && v !== common) return undefined;
    common = v;
  }
  return common;
}
