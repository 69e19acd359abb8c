import { basename, extname } from 'node:path';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { loadClipModel, type ClipModel } from '../../eval/clip-model.js';
import { LpipsModel } from '../../eval/lpips.js';
import { namedPromptSet, readPromptFile } from '../../eval/prompts.js';
import { evaluateConfigs } from '../../eval/run.js';
import { DEFAULT_METRICS, defineTask } from '../../eval/task.js';
import { isProvider, PROVIDERS, type ProviderName } from '../../runtime/providers.js';
import { SmashConfig } from '../../smash/config.js';
import { progressBars } from '../progress.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];
const int = (key: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ConfigError('BAD_OPTION', `--${key} must be an integer (got '${v}')`, key);
  return n;
};

interface EvalFlags {
  model: string; config: string[]; out: string; prompts: string; numPrompts?: string; seeds: string; metrics?: string;
  steps?: string; guidance?: string; width?: string; height?: string; maxSequenceLength?: string; warmup: string;
  clip?: string; lpips?: string; provider: string; threads?: string; force?: boolean;
}

export function registerEval(p: Command) {
  p.command('eval')
    .description('evaluate SmashConfigs against the base pipeline: speed and fidelity metrics, results.json and a self-contained report.html')
    .requiredOption('--model <dir>', 'the base pipeline folder (diffusers or ONNX)')
    .requiredOption('--config <smash.json>', 'a SmashConfig to evaluate (repeat for several; named by the file name)', collect)
    .requiredOption('--out <dir>', 'output folder: results.json, report.html, bundles/<config>/')
    .option('--prompts <set|file>', 'builtin, shapes, shapes:N (the trained fixtures\' captions), or a .txt/.json/.csv file', 'builtin')
    .option('--num-prompts <n>', 'use only the first n prompts')
    .option('--seeds <list>', 'seeds, comma-separated: every prompt runs with each', '0')
    .option('--metrics <list>', `comma-separated (default: ${DEFAULT_METRICS.join(',')}; also clipScore, cmmd with --clip, lpips with --lpips)`)
    .option('--steps <n>', 'denoising steps')
    .option('--guidance <scale>', 'guidance scale')
    .option('--width <px>', 'image width')
    .option('--height <px>', 'image height')
    .option('--max-sequence-length <n>', 'Flux: T5 tokens')
    .option('--warmup <n>', 'untimed generations before the timed ones', '1')
    .option('--clip <dir>', 'Hugging Face CLIP folder (e.g. openai/clip-vit-large-patch14) for clipScore and cmmd')
    .option('--lpips <model.onnx>', 'LPIPS ONNX graph (two [N,3,H,W] inputs in [-1,1]) for lpips')
    .option('--provider <name>', `execution provider: ${PROVIDERS.join(', ')}`, 'cpu')
    .option('--threads <n>', 'intra-op threads')
    .option('--force', 'replace an earlier output of smash eval')
    .action(async (o: EvalFlags) => {
      if (!isProvider(o.provider)) throw new ConfigError('PROVIDER', `unknown execution provider '${o.provider}' (known: ${PROVIDERS.join(', ')})`, 'provider');
      let prompts = existsSync(o.prompts) ? readPromptFile(o.prompts) : namedPromptSet(o.prompts);
      const n = int('num-prompts', o.numPrompts);
      if (n !== undefined) prompts = prompts.slice(0, Math.max(1, n));
      const seeds = o.seeds.split(',').map((s) => int('seeds', s.trim())!);
      const guidance = o.guidance === undefined ? undefined : Number(o.guidance);
      const task = defineTask({
        prompts,
        seeds,
        metrics: o.metrics?.split(',').map((m) => m.trim()).filter(Boolean),
        warmup: int('warmup', o.warmup),
        generation: { steps: int('steps', o.steps), guidanceScale: guidance, width: int('width', o.width), height: int('height', o.height), maxSequenceLength: int('max-sequence-length', o.maxSequenceLength) },
      });
      const names = new Set<string>();
      const configs = o.config.map((file) => {
        let name = basename(file, extname(file));
        for (let k = 2; names.has(name); k++) name = `${basename(file, extname(file))}-${k}`;
        names.add(name);
        return { name, config: SmashConfig.fromFile(file) };
      });
      for (const k of Object.keys(task.generation) as (keyof typeof task.generation)[]) if (task.generation[k] === undefined) delete task.generation[k];
      let clip: ClipModel | undefined;
      let lpips: LpipsModel | undefined;
      const bars = progressBars();
      try {
        if (o.clip) clip = await loadClipModel(o.clip);
        if (o.lpips) lpips = await LpipsModel.load(o.lpips);
        // every pipeline of the run says the same things: each warning once
        const said = new Set<string>();
        const warn = (m: string) => { if (!said.has(m)) { said.add(m); process.stderr.write(`warning: ${m}\n`); } };
        const r = await evaluateConfigs({
          model: o.model, configs, task, out: o.out, force: o.force, clip, lpips,
          load: { provider: o.provider as ProviderName, threads: int('threads', o.threads), onWarning: warn },
          onProgress: (name, done, total) => bars.update(name, done, total, 'images'),
        });
        bars.stop();
        for (const res of r.results) {
          const m = res.metrics;
          process.stdout.write(`${res.name.padEnd(16)} latency ${m.latencyMs?.toFixed(1) ?? '-'} ms${res.isBase ? '' : `  PSNR ${m.psnrDb?.toFixed(2) ?? '-'} dB  SSIM ${m.ssim?.toFixed(4) ?? '-'}`}\n`);
        }
        process.stdout.write(`wrote ${r.json} and ${r.html}\n`);
      } finally {
        bars.stop();
        await clip?.release();
        await lpips?.release();
      }
    });
}
