// The benchmark workloads of issue 13, built with create-random (random weights in the released
// layouts at realistic proportions) and cached on disk under $SMASH_CACHE/bench/<name>-<key>/
// (default ~/.cache/smash/bench/), keyed by the recipe, so later runs reuse them. What a recipe
// cannot say with create-random's scaling options (a full-size CLIP-L beside a quarter-width T5,
// a Flux transformer with 12 heads of 64) is a component override: a preset's config.json with
// some keys set, written in place of the pipeline's own component.
//   node bench/workloads.mjs [name ...]      builds (or finds) them and prints their folders
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lib = await import(join(root, 'dist', 'index.js'));

/**
 * Each recipe: `pipeline` and `scale` are `smash create-random --pipeline <p> --width-mult <x>
 * --depth <n>`; `components` replace folders, each a preset (`config`) with `set` keys over its
 * config.json and optional scaling; `parameters` is the count issue 13 specifies (checked).
 */
export const WORKLOADS = {
  'flux-small': {
    kind: 'flux',
    description: 'Flux transformer 12 heads × 64 (axes_dims_rope [8, 28, 28]), 3 double + 6 single blocks, joint_attention_dim 1024, pooled_projection_dim 768; T5 d_model 1024 × 6 layers; full-size CLIP-L; Flux VAE at quarter width',
    pipeline: 'flux-dev',
    scale: { widthMult: 0.25, depth: 6 },
    components: {
      transformer: { config: 'flux-dev', set: { num_attention_heads: 12, attention_head_dim: 64, axes_dims_rope: [8, 28, 28], num_layers: 3, num_single_layers: 6, joint_attention_dim: 1024, pooled_projection_dim: 768 } },
      text_encoder: { config: 'clip-l-flux' },
      vae: { config: 'vae-flux', widthMult: 0.25 },
    },
    parameters: 355_350_147,
    generation: { width: 256, height: 256, steps: 28, guidanceScale: 3.5, maxSequenceLength: 128 },
    denoiser: 'transformer',
  },
  'sd15-small': {
    kind: 'sd',
    description: 'SD 1.5 UNet with block_out_channels (128, 256, 512, 512); full-size CLIP-L; SD VAE at half width; PNDM',
    pipeline: 'sd15',
    scale: {},
    components: {
      unet: { config: 'sd15', set: { block_out_channels: [128, 256, 512, 512] } },
      vae: { config: 'vae-sd', widthMult: 0.5 },
    },
    parameters: 286_242_091,
    generation: { width: 256, height: 256, steps: 25, guidanceScale: 7.5 },
    denoiser: 'unet',
  },
  // one call of the full-size SD 1.5 UNet (fp16 weights as released, converted to float32 ONNX)
  'sd15-unet-full': {
    kind: 'unet',
    description: 'the full-size SD 1.5 UNet (create-random --class UNet2DConditionModel --config sd15 --dtype fp16), one call at 512×512 with CFG (batch 2)',
    component: { config: 'sd15' },
    dtype: 'float16',
    parameters: 859_520_964,
    generation: { width: 512, height: 512, batch: 2 },
    denoiser: 'unet',
  },
};

export function benchCacheRoot() {
  return join(process.env.SMASH_CACHE ?? join(homedir(), '.cache', 'smash'), 'bench');
}

/** The key of a recipe: what is written depends on it and on the seed alone. */
export function recipeKey(name) {
  const w = WORKLOADS[name];
  const what = { pipeline: w.pipeline, scale: w.scale, components: w.components, component: w.component, dtype: w.dtype, seed: 0 };
  return createHash('sha256').update(JSON.stringify(what)).digest('hex').slice(0, 12);
}

function spec({ config, set, widthMult, depth }) {
  const base = set ? { ...lib.getPreset(config).config, ...set } : config;
  return lib.resolveComponent({ config: base, widthMult, depth });
}

/** The parameters a recipe writes, counted from its layout (nothing written). */
export function recipeParameters(name) {
  const w = WORKLOADS[name];
  if (w.component) return lib.componentLayout(spec(w.component), w.dtype).parameters;
  const overrides = Object.fromEntries(Object.entries(w.components).map(([k, c]) => [k, spec(c)]));
  return lib.pipelineSpecs(w.pipeline, w.scale, overrides).reduce((a, { spec: s }) => a + lib.componentLayout(s).parameters, 0);
}

/**
 * The workload's folder (a diffusers pipeline folder, or a component folder for sd15-unet-full),
 * written on first use. Returns `{ dir, built, buildMs, parameters }`.
 */
export function ensureWorkload(name, log = () => {}) {
  const w = WORKLOADS[name];
  if (!w) throw new Error(`no workload '${name}' (workloads: ${Object.keys(WORKLOADS).join(', ')})`);
  const parameters = recipeParameters(name);
  if (parameters !== w.parameters) throw new Error(`${name}: the recipe gives ${parameters.toLocaleString('en-US')} parameters, issue 13 specifies ${w.parameters.toLocaleString('en-US')}`);
  const dir = join(benchCacheRoot(), `${name}-${recipeKey(name)}`);
  const done = join(dir, w.component ? 'config.json' : 'model_index.json');
  if (existsSync(done)) return { dir, built: false, buildMs: 0, parameters: withDefaults(dir, w) };
  log(`building ${name} (${parameters.toLocaleString('en-US')} parameters) into ${dir} ...`);
  const t0 = performance.now();
  if (w.component) lib.createRandomComponent(dir, spec(w.component), { dtype: w.dtype, force: true });
  else {
    const components = Object.fromEntries(Object.entries(w.components).map(([k, c]) => [k, spec(c)]));
    lib.createRandomPipeline(dir, w.pipeline, { ...w.scale, components, force: true });
  }
  return { dir, built: true, buildMs: performance.now() - t0, parameters: withDefaults(dir, w) };
}

/**
 * A pipeline workload carries its generation settings in smash.json (the folder's documented
 * defaults), so whatever generates without being told (int8Static's calibration) runs at the
 * workload's size and steps. Returns the recipe's parameter count.
 */
function withDefaults(dir, w) {
  const file = join(dir, 'smash.json');
  if (!w.component && !existsSync(file)) {
    const { batch: _, ...generation } = w.generation;
    writeFileSync(file, `${JSON.stringify({ generation }, null, 2)}\n`);
  }
  return w.parameters;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const name of process.argv.length > 2 ? process.argv.slice(2) : Object.keys(WORKLOADS)) {
    const r = ensureWorkload(name, console.log);
    console.log(`${name}: ${r.dir} (${r.parameters.toLocaleString('en-US')} parameters${r.built ? `, built in ${(r.buildMs / 1000).toFixed(1)} s` : ', cached'})`);
  }
}
