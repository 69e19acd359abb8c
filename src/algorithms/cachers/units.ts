/**
 * What a cacher's report names: module paths at block granularity (block records' names, or a
 * block's sub-modules where a cut splits it). They travel in graph names, so that a saved
 * bundle's wrapper reads them back without the transformation being run again:
 *
 *   cut part names      the modules the part skips: `transformer_blocks.1-18+single_transformer_blocks.0-37`
 *   cache.always/<…>    graph output (never fetched): the modules that run on every call, cached or not
 *
 * Packed form: paths joined by `+`; consecutive siblings `p.a`, …, `p.b` as `p.a-b` (diffusers'
 * module paths hold neither `+` nor `-`). A name without either stands for itself, so the parts
 * of FORA (`transformer_blocks.3.attn`) and older bundles read as they are.
 */
import { deriveBlocks } from '../../ir/blocks.js';
import type { Graph, Model, Value } from '../../ir/graph.js';
import { blockPatternsFor } from '../../models/block-patterns.js';
import { exposeAs } from './graph.js';

export const CACHE_ALWAYS = 'cache.always/';

/** `['a.0', 'a.1', 'a.2', 'b']` → `a.0-2+b`. */
export function packModules(paths: readonly string[]): string {
  const out: string[] = [];
  let run: { prefix: string; from: number; to: number } | undefined;
  const flush = () => {
    if (run) out.push(run.from === run.to ? `${run.prefix}.${run.from}` : `${run.prefix}.${run.from}-${run.to}`);
    run = undefined;
  };
  for (const p of paths) {
    const m = /^(.*)\.(\d+)$/.exec(p);
    if (m && run && run.prefix === m[1] && Number(m[2]) === run.to + 1) {
      run.to++;
      continue;
    }
    flush();
    if (m) run = { prefix: m[1]!, from: Number(m[2]), to: Number(m[2]) };
    else out.push(p);
  }
  flush();
  return out.join('+');
}

/** The inverse of {@link packModules}. */
export function unpackModules(label: string): string[] {
  if (!label) return [];
  return label.split('+').flatMap((unit) => {
    const m = /^(.*)\.(\d+)-(\d+)$/.exec(unit);
    if (!m) return [unit];
    const from = Number(m[2]);
    const to = Number(m[3]);
    return Array.from({ length: Math.max(0, to - from + 1) }, (_, k) => `${m[1]}.${from + k}`);
  });
}

/** Declares the modules that run on every call as a graph output named `cache.always/<packed>` (an Identity of `v`, a small value). */
export function declareAlways(g: Graph, v: Value, modules: readonly string[]): void {
  if (modules.length) exposeAs(g, v, `${CACHE_ALWAYS}${packModules(modules)}`);
}

/** The modules a transformed graph declares to run on every call (none when it declares nothing). */
export function alwaysModules(outputNames: readonly string[]): string[] {
  const name = outputNames.find((n) => n.startsWith(CACHE_ALWAYS));
  return name ? unpackModules(name.slice(CACHE_ALWAYS.length)) : [];
}

/**
 * The denoiser's outermost blocks (`transformer_blocks.0`…, `down_blocks.0`…,
 * `mid_block`, `up_blocks.*`): what runs around the sub-modules FORA and PAB cut. Read it before
 * cutting (blocks moved behind an If are no longer top-level nodes).
 */
export function outerBlocks(model: Model): string[] {
  const blocks = deriveBlocks(model, blockPatternsFor(model));
  const outer = blocks.filter((b) => !blocks.some((o) => b.name.startsWith(`${o.name}.`)));
  // records come in pattern order (down, mid, up; double, single), each in graph order
  return outer.map((b) => b.name);
}
