/**
 * A SmashConfig applied to graphs: every algorithm's transform, in the config's order, as one
 * function over (component, model) — what the loader calls before it creates each session, and
 * what `smash convert --quantize` calls before it writes each graph.
 */
import type { Model } from '../ir/graph.js';
import type { SmashTarget } from '../algorithms/algorithm.js';
import { componentInfo } from '../algorithms/component.js';
import type { SmashConfig } from './config.js';

export function graphTransform(config: SmashConfig, target: SmashTarget): (component: string, model: Model) => Model {
  config.checkSupports(target);
  const applications = config.steps.map((s) => s.algorithm.apply(s.params as never, target));
  return (component, model) => {
    const info = componentInfo(component, model);
    let m = model;
    for (const a of applications) if (a.transform) m = a.transform(info, m);
    return m;
  };
}
