/**
 * A SmashConfig applied to graphs: every algorithm's transform, in the config's order, as one
 * function over (component, model) — what the loader calls before it creates each session, and
 * what `smash convert --quantize` calls before it writes each graph.
 */
import type { Model } from '../ir/graph.js';
import { saveModel } from '../ir/model-file.js';
import type { SessionTuning, SmashTarget } from '../algorithms/algorithm.js';
import type { Denoiser } from '../pipelines/denoiser.js';
import { componentInfo } from '../algorithms/component.js';
import type { SmashConfig } from './config.js';

export function graphTransform(config: SmashConfig, target: SmashTarget): (component: string, model: Model) => Model {
  return applyConfig(config, target).transform;
}

/** Every algorithm's contribution, in the config's order: graph rewrites and denoiser wrappers. */
export function applyConfig(config: SmashConfig, target: SmashTarget) {
  config.checkSupports(target);
  const applications = config.steps.map((s) => s.algorithm.apply(s.params as never, target));
  return {
    applications,
    /** the transforms of the first `n` algorithms only (what a calibrating algorithm's observations see) */
    transformBefore(n: number) {
      return (component: string, model: Model): Model => {
        const info = componentInfo(component, model);
        let m = model;
        for (const a of applications.slice(0, n)) if (a.transform) m = a.transform(info, m);
        return m;
      };
    },
    transform(component: string, model: Model): Model {
      const info = componentInfo(component, model);
      let m = model;
      for (const a of applications) if (a.transform) m = a.transform(info, m);
      return m;
    },
    /** Writes a transformed graph into a bundle: the last algorithm that writes graphs its own way, else as it is. */
    async writeGraph(model: Model, file: string): Promise<void> {
      const writer = applications.filter((a) => a.writeGraph).at(-1);
      if (writer) await writer.writeGraph!(model, file);
      else saveModel(model, file);
    },
    /** Every algorithm's session options for a component, later algorithms over earlier ones (config entries merged). */
    sessionOptions(component: string): SessionTuning {
      let o: SessionTuning = {};
      for (const a of applications) {
        const t = a.sessionOptions?.(component);
        if (t) o = { ...o, ...t, ...(o.configEntries || t.configEntries ? { configEntries: { ...o.configEntries, ...t.configEntries } } : {}) };
      }
      return o;
    },
    wrapDenoiser(denoiser: Denoiser): Denoiser {
      let d = denoiser;
      for (const a of applications) if (a.wrapDenoiser) d = a.wrapDenoiser(d);
      return d;
    },
  };
}
