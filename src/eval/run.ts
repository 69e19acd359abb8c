/**
 * One evaluation run: load the base pipeline, evaluate it, then for each SmashConfig smash it,
 * save the bundle (its bytes on disk are the model size), load the bundle cold and evaluate it
 * against the base; write results.json and report.html.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { checkOutputFolder, markOutputFolder } from '../fs/output.js';
import type { LoadPipelineOptions } from '../pipelines/loader.js';
import { SmashConfig } from '../smash/config.js';
import { loadPipeline, smash } from '../smash/smash.js';
import { EvaluationAgent, type AgentOptions, type EvaluationResult } from './agent.js';
import { reportHtml, reportJson } from './report.js';
import type { Task } from './task.js';

export interface EvaluateConfigsOptions extends Pick<AgentOptions, 'clip' | 'lpips' | 'onProgress'> {
  model: string;
  configs: readonly { name: string; config: SmashConfig }[];
  task: Task;
  out: string;
  force?: boolean;
  load?: Pick<LoadPipelineOptions, 'provider' | 'threads' | 'cacheDir' | 'onWarning'>;
}

export async function evaluateConfigs(o: EvaluateConfigsOptions): Promise<{ results: EvaluationResult[]; json: string; html: string }> {
  checkOutputFolder(o.out, { sources: [o.model], force: o.force });
  const agent = new EvaluationAgent(o.task, { clip: o.clip, lpips: o.lpips, onProgress: o.onProgress });
  const out = resolve(o.out);
  mkdirSync(join(out, 'bundles'), { recursive: true });
  const results: EvaluationResult[] = [];
  let t0 = performance.now();
  const base = await loadPipeline(o.model, o.load);
  try {
    results.push(await agent.evaluateBase({ name: 'base', pipe: base, loadMs: performance.now() - t0, modelDir: base.source.onnxDir }));
    for (const { name, config } of o.configs) {
      t0 = performance.now();
      const smashed = await smash(base, config, o.load);
      const smashMs = performance.now() - t0;
      const bundle = join(out, 'bundles', name);
      try {
        await smashed.save(bundle, { overwrite: true });
      } finally {
        await smashed.release();
      }
      // evaluated as a user gets it: the saved bundle, loaded cold
      t0 = performance.now();
      const loaded = await loadPipeline(bundle, o.load);
      const loadMs = performance.now() - t0;
      try {
        results.push(await agent.evaluate({ name, pipe: loaded, loadMs, smashMs, modelDir: bundle }));
      } finally {
        await loaded.release();
      }
    }
  } finally {
    await base.release();
  }
  const input = { model: o.model, task: o.task, results, configs: Object.fromEntries(o.configs.map((c) => [c.name, c.config.toJSON()])) };
  const json = join(out, 'results.json');
  const html = join(out, 'report.html');
  writeFileSync(json, `${JSON.stringify(reportJson(input), null, 2)}\n`);
  writeFileSync(html, reportHtml(input));
  markOutputFolder(out, 'smash eval');
  return { results, json, html };
}
