import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { convert } from '../../models/convert.js';
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
    .action((folder: string | undefined, o: { model?: string; out: string; dtype: string; variant?: string; force?: boolean }) => {
      const src = folder ?? o.model;
      if (!src) throw new ConfigError('MISSING_OPTION', 'give the source folder as an argument or with --model', 'model');
      const dtype = ({ fp32: 'float32', float32: 'float32', fp16: 'float16', float16: 'float16' } as const)[o.dtype as 'fp32'];
      if (!dtype) throw new ConfigError('BAD_OPTION', `--dtype ${o.dtype} is not supported (fp32, fp16)`, 'dtype');
      const bars = progressBars();
      const t0 = performance.now();
      try {
        const r = convert(src, o.out, {
          dtype, variant: o.variant, force: o.force,
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
