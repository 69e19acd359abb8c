import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { createRandomComponent, createRandomPipeline, parseDType, parseSeed, parseSize, resolveComponent } from '../../random/create-random.js';
import { PIPELINES } from '../../random/pipelines.js';
import { presetNames } from '../../random/presets.js';
import { progressBars } from '../progress.js';

interface Options {
  class?: string;
  config?: string;
  pipeline?: string;
  out: string;
  seed: string;
  dtype: string;
  widthMult?: string;
  depth?: string;
  shardSize?: string;
  force?: boolean;
}

function parseWidth(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const v = /^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(s) ? Number(s) : NaN;
  if (!(Number.isFinite(v) && v > 0)) throw new ConfigError('BAD_OPTION', `--width-mult ${s} is not supported (a number > 0, e.g. 0.25)`, 'width-mult');
  return v;
}

function parseDepth(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const v = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!(Number.isInteger(v) && v >= 1)) throw new ConfigError('BAD_OPTION', `--depth ${s} is not supported (an integer ≥ 1)`, 'depth');
  return v;
}

/** Values stored (what `inspect` counts), and the trainable parameters when buffers (SD3's pos_embed) differ. */
function counted(l: { values: number; parameters: number }): string {
  const n = (x: number) => x.toLocaleString('en-US');
  return l.values === l.parameters ? `${n(l.values)} parameters` : `${n(l.values)} values stored (${n(l.parameters)} trainable parameters + buffers)`;
}

function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

export function registerCreateRandom(p: Command) {
  p.command('create-random')
    .description('write a random-weight checkpoint (a component, or a whole pipeline) in a released model\'s layout, at full or reduced size')
    .option('--class <ClassName>', 'component class (UNet2DConditionModel, AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel, CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel); must agree with the preset')
    .option('--config <preset|file>', `a preset (${presetNames().join(', ')}) or a config.json`)
    .option('--pipeline <name>', `a whole pipeline folder instead (${PIPELINES.join(', ')})`)
    .requiredOption('--out <dir>', 'output folder (must be absent or empty unless --force)')
    .option('--seed <n>', 'random seed (each tensor is seeded from it and its name)', '0')
    .option('--dtype <dtype>', 'weight dtype: fp32, fp16 or bf16', 'fp32')
    .option('--width-mult <x>', 'scale channel widths / head counts by x (see src/random/scale.ts)')
    .option('--depth <n>', 'layers per block / transformer layers / hidden layers')
    .option('--shard-size <size>', 'shard above this size, e.g. 2GB or 500MB (default 10GB diffusers, 5GB transformers)')
    .option('--force', 'replace a non-empty output folder')
    .action((o: Options) => {
      const seed = parseSeed(o.seed);
      const dtype = parseDType(o.dtype);
      const widthMult = parseWidth(o.widthMult);
      const depth = parseDepth(o.depth);
      const shardSize = o.shardSize === undefined ? undefined : parseSize(o.shardSize);
      if (o.pipeline !== undefined && (o.config !== undefined || o.class !== undefined)) {
        throw new ConfigError('BAD_OPTION', '--pipeline writes a whole pipeline: give it without --config/--class', 'pipeline');
      }
      if (o.pipeline === undefined && o.config === undefined) {
        throw new ConfigError('MISSING_OPTION', `give --config <preset|config.json> (presets: ${presetNames().join(', ')}) or --pipeline <${PIPELINES.join('|')}>`, 'config');
      }
      const bars = progressBars();
      const t0 = performance.now();
      try {
        const common = { seed, dtype, shardSize, force: o.force, onProgress: (c: string, d: number, t: number) => bars.update(c, d, t, 'tensors') };
        if (o.pipeline !== undefined) {
          const r = createRandomPipeline(o.out, o.pipeline, { ...common, widthMult, depth });
          bars.stop();
          const lines = r.components.map((c) => `  ${c.folder.slice(r.folder.length + 1).padEnd(16)} ${c.className.padEnd(28)} ${counted(c.layout)}  ${gb(c.layout.bytes)}`);
          process.stdout.write(`wrote pipeline ${o.pipeline} into ${o.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n${lines.join('\n')}\n`);
        } else {
          const spec = resolveComponent({ className: o.class, config: o.config!, widthMult, depth });
          const r = createRandomComponent(o.out, spec, common);
          bars.stop();
          process.stdout.write(
            `wrote ${spec.className} (${spec.label}) into ${o.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
              `${counted(r.layout)}, ${r.layout.entries.length} tensors, ${gb(r.layout.bytes)}, ${r.files.filter((f) => f.endsWith('.safetensors')).length} file(s)\n`,
          );
        }
      } finally {
        bars.stop();
      }
    });
}
