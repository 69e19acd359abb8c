/**
 * Calibration for static quantization: the pipeline is loaded once with the values an algorithm
 * observes exposed as extra denoiser outputs, its prompts are generated, and the range every
 * observed value took (over all steps and guidance branches) goes back to the algorithm.
 */
import type { Application } from '../algorithms/algorithm.js';
import { componentInfo } from '../algorithms/component.js';
import type { Model } from '../ir/graph.js';
import { StatefulDenoiser, type Denoiser, type DenoiseContext, type DenoiserFeeds, type Prediction, type PredictRequest } from '../pipelines/denoiser.js';
import { loadPipeline, type LoadPipelineOptions } from '../pipelines/loader.js';

type Calibration = NonNullable<Application['calibration']>;

/** A pass-through denoiser that also fetches the observed values and widens their ranges. */
class Observer extends StatefulDenoiser<null> {
  readonly ranges = new Map<string, { min: number; max: number }>();
  constructor(inner: Denoiser, readonly observed: readonly string[]) {
    super(inner);
  }
  protected initialState(): null {
    return null;
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const r = await this.inner.predict(feeds, ctx, { ...request, outputs: [...(request.outputs ?? []), ...this.observed] });
    for (const name of this.observed) {
      const data = (r.outputs[name] as { data: ArrayLike<number> }).data;
      const range = this.ranges.get(name) ?? { min: Infinity, max: -Infinity };
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (v < range.min) range.min = v;
        if (v > range.max) range.max = v;
      }
      this.ranges.set(name, range);
    }
    return r;
  }
}

/**
 * Runs `calibration` on the ONNX folder, with `before` (the preceding algorithms' rewrites)
 * applied first, so observed names are those the calibrated transform will see.
 */
export async function calibrate(onnxDir: string, calibration: Calibration, before: (component: string, model: Model) => Model, opts: LoadPipelineOptions): Promise<void> {
  let observed: string[] = [];
  const pipe = await loadPipeline(onnxDir, {
    ...opts,
    transform: (component, model) => {
      const m = before(component, model);
      const info = componentInfo(component, m);
      if (info.role !== 'denoiser') return m;
      const values = m.graph.values();
      // node outputs only: a graph input's range is the caller's to know
      observed = calibration.observe(info, m).filter((n) => values.get(n)?.producer && !m.graph.outputs.some((o) => o.name === n));
      for (const n of observed) m.graph.outputs.push(values.get(n)!);
      return m;
    },
  });
  try {
    const observer = new Observer(pipe.denoiser, observed);
    pipe.denoiser = observer;
    for (const [i, prompt] of calibration.prompts.entries()) {
      await pipe.generate({ prompt, seed: i, ...(calibration.steps ? { steps: calibration.steps } : {}) });
    }
    calibration.calibrated(observer.ranges);
  } finally {
    await pipe.release();
  }
}
