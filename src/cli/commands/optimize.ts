import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import type { Model } from '../../ir/graph.js';
import { loadModel } from '../../ir/model-file.js';
import { isProvider, PROVIDERS, type ProviderName } from '../../runtime/providers.js';
import { smashConfigOption, WITH_HELP } from '../smash-config.js';
import { explainSteps, formatExplanation } from '../../smash/explain.js';
import { loadPipeline, smash } from '../../smash/smash.js';
import { folderTarget } from '../../smash/target.js';

/** Every component graph of an ONNX folder, by folder name. */
function graphsOf(onnxDir: string): Map<string, Model> {
  const m = new Map<string, Model>();
  for (const e of readdirSync(onnxDir, { withFileTypes: true })) {
    const file = join(onnxDir, e.name, 'model.onnx');
    if (e.isDirectory() && existsSync(file)) m.set(e.name, loadModel(file));
  }
  return m;
}

export function registerOptimize(p: Command) {
  p.command('optimize')
    .description('smash a pipeline with a SmashConfig and save the result as a bundle that loads again in one call')
    .requiredOption('--model <dir>', 'pipeline folder (diffusers or ONNX)')
    .option('--config <smash.json>', 'the SmashConfig: { "algorithm": { hyperparameters } } (Pruna\'s snake_case accepted)')
    .option('--with <algorithms...>', WITH_HELP)
    .option('--out <dir>', 'bundle folder to write (required unless --explain)')
    .option('--explain', 'print the order, the resolved hyperparameters and the modules each algorithm touches; write nothing')
    .option('--provider <name>', `where the bundle will run: ${PROVIDERS.join(', ')}`, 'cpu')
    .option('--force', 'replace an existing bundle folder')
    .action(async (o: { model: string; config?: string; with?: string[]; out?: string; explain?: boolean; provider: string; force?: boolean }) => {
      if (!isProvider(o.provider)) throw new ConfigError('PROVIDER', `unknown execution provider '${o.provider}' (known: ${PROVIDERS.join(', ')})`, 'provider');
      if (!o.explain && !o.out) throw new ConfigError('MISSING_OPTION', 'give --out <dir> (or --explain to only print the plan)', 'out');
      const config = smashConfigOption(o);
      if (!config) throw new ConfigError('MISSING_OPTION', 'give the SmashConfig: --config <smash.json>, --with <algorithms...> (name or name.key=value), or both', 'config');
      const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
      const pipe = await loadPipeline(o.model, { provider: o.provider as ProviderName, onWarning: warn });
      try {
        if (o.explain) {
          const target = folderTarget(pipe.source.onnxDir, o.provider as ProviderName);
          process.stdout.write(`${formatExplanation(explainSteps(config, target, graphsOf(pipe.source.onnxDir)))}\n`);
          return;
        }
        const t0 = performance.now();
        const smashed = await smash(pipe, config, { provider: o.provider as ProviderName, onWarning: warn });
        try {
          await smashed.save(o.out!, { overwrite: o.force });
        } finally {
          await smashed.release();
        }
        process.stdout.write(`smashed ${config.steps.map((s) => s.algorithm.name).join(' + ')} into ${o.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      } finally {
        await pipe.release();
      }
    });
}
