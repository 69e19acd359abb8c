/**
 * `smash optimize --explain`: the order of application, each algorithm's resolved
 * hyperparameters, and the modules it would touch in each component — computed on the graphs
 * without changing them.
 */
import type { Model } from '../ir/graph.js';
import type { SmashTarget } from '../algorithms/algorithm.js';
import { componentInfo } from '../algorithms/component.js';
import type { SmashConfig } from './config.js';

export interface ExplainedStep {
  name: string;
  kind: string;
  description: string;
  params: Record<string, unknown>;
  /** component -> module paths */
  touches: Record<string, string[]>;
}

export function explainSteps(config: SmashConfig, target: SmashTarget, graphs: ReadonlyMap<string, Model>): ExplainedStep[] {
  config.checkSupports(target);
  return config.steps.map(({ algorithm, params }) => {
    const app = algorithm.apply(params as never, target);
    const touches: Record<string, string[]> = {};
    for (const [name, model] of graphs) {
      const paths = app.touches?.(componentInfo(name, model), model) ?? [];
      if (paths.length) touches[name] = paths;
    }
    return { name: algorithm.name, kind: algorithm.kind, description: algorithm.description, params, touches };
  });
}

/** The same as text: one block per algorithm, at most `listed` module paths per component. */
export function formatExplanation(steps: readonly ExplainedStep[], listed = 6): string {
  const lines: string[] = [];
  steps.forEach((s, i) => {
    lines.push(`${i + 1}. ${s.name} (${s.kind}): ${s.description}`);
    lines.push(`   hyperparameters: ${JSON.stringify(s.params)}`);
    const comps = Object.entries(s.touches);
    if (!comps.length) lines.push('   touches: no module of these graphs');
    for (const [c, paths] of comps) {
      const more = paths.length > listed ? `, … (${paths.length - listed} more)` : '';
      lines.push(`   ${c}: ${paths.length} module${paths.length === 1 ? '' : 's'}: ${paths.slice(0, listed).join(', ')}${more}`);
    }
  });
  return lines.join('\n');
}
