import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { convert } from '../../models/convert.js';
import { graphTransform } from '../../smash/apply.js';
import { SmashConfig } from '../../smash/config.js';
import { folderTarget } from '../../smash/target.js';
import { progressBars } from '../progress.js';
import { warner } from '../warnings.js';

export function registerConvert(p: Command) {
  p.command('convert')
    .description('convert a diffusers/transformers folder (a component or a whole pipeline) to ONNX in Optimum\'s layout')
    .argument('[folder]', 'source folder (config.json + safetensors, or model_index.json)')
    .option('--model <folder>', 'source folder (same as the argument)')
    .requiredOption('--out <dir>', 'output folder (never inside the source)')
    .option('--dtype <dtype>', 'weight dtype of the ONNX graphs: fp32 or fp16', 'fp32')
    .option('--variant <name>', 'checkpoint variant, e.g. fp16 for *.fp16.safetensors')
    .option('--force', 'replace an existing output folder')
    .option('--quantize <bits>', 'quantize while converting, tensor by tensor: int8 (int8Dynamic) or int4 (int4WeightOnly)')
    .action((folder: string | undefined, o: { model?: string; out: string; dtype: string; variant?: string; force?: boolean; quantize?: string }) => {
      const src = folder ?? o.model;
      if (!src) throw new ConfigError('MISSING_OPTION', 'give the source folder as an argument or with --model', 'model');
      const dtype = ({ fp32: 'float32', float32: 'float32', fp16: 'float16', float16: 'float16' } as const)[o.dtype as 'fp32'];
      if (!dtype) throw new ConfigError('BAD_OPTION', `--dtype ${o.dtype} is not supported (fp32, fp16)`, 'dtype');
      const algorithm = o.quantize === undefined ? undefined : ({ int8: 'int8Dynamic', int4: 'int4WeightOnly' } as const)[o.quantize as 'int8'];
      if (o.quantize !== undefined && !algorithm) throw new ConfigError('BAD_OPTION', `--quantize ${o.quantize} is not supported (int8, int4)`, 'quantize');
      const transform = algorithm ? graphTransform(new SmashConfig({ [algorithm]: {} }), folderTarget(src)) : undefined;
      const bars = progressBars();
      const t0 = performance.now();
      try {
        const r = convert(src, o.out, {
          dtype, variant: o.variant, force: o.force, transform,
          onProgress: (c, d, t) => bars.update(c, d, t, 'tensors'),
          onWarning: warner(),
        });
        bars.stop();
        process.stdout.write(`converted ${r.components.join(', ')} into ${o.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      } finally {
        bars.stop();
      }
    });
}
