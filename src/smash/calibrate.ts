/**
 * Calibration for static quantization: the pipeline is loaded once with the range of every value
 * an algorithm observes exposed as denoiser outputs, its prompts are generated, and the range each
 * observed value took (over all steps and guidance branches) goes back to the algorithm.
 *
 * The ranges are reduced inside the graph (a ReduceMin and a ReduceMax per value, two scalars
 * out): copying every observed activation to the host and scanning it in JavaScript cost more
 * than the denoiser itself at real sizes.
 */
import type { Application } from '../algorithms/algorithm.js';
import { componentInfo } from '../algorithms/component.js';
import { Node, Value, type Model } from '../ir/graph.js';
import type { GenerationDefaults } from '../pipelines/defaults.js';
import { StatefulDenoiser, type Denoiser, type DenoiseContext, type DenoiserFeeds, type Prediction, type PredictRequest } from '../pipelines/denoiser.js';
import { loadPipeline, type LoadPipelineOptions } from '../pipelines/loader.js';

type Calibration = NonNullable<Application['calibration']>;

/** The scalar outputs that carry an observed value's range in the calibration graph. */
const rangeOutputs = (name: string) => ({ min: `${name}/calibration/ReduceMin`, max: `${name}/calibration/ReduceMax` });

/** Adds `ReduceMin`/`ReduceMax` over all axes of each observed value, as graph outputs. */
export function exposeRanges(model: Model, observed: readonly string[]): void {
  const g = model.graph;
  const values = g.values();
  for (const name of observed) {
    const v = values.get(name)!;
    for (const [op, out] of [['ReduceMin', rangeOutputs(name).min], ['ReduceMax', rangeOutputs(name).max]] as const) {
      // no axes and keepdims 0: a scalar, in every opset (axes moved to an input in 18)
      const n = new Node(op, out);
      n.inputs.push(v);
      const r = new Value(out, v.dtype, []);
      n.outputs.push(r);
      n.attributes.set('keepdims', { type: 'int', value: 0 });
      g.insert(n);
      g.outputs.push(r);
    }
  }
}

/** A pass-through denoiser that also fetches the observed values' ranges and widens its own. */
class Observer extends StatefulDenoiser<null> {
  readonly ranges = new Map<string, { min: number; max: number }>();
  /** denoiser calls observed, and the size of the last */
  calls = 0;
  size = { width: 0, height: 0 };
  private readonly fetch: string[];
  constructor(inner: Denoiser, readonly observed: readonly string[]) {
    super(inner);
    this.fetch = observed.flatMap((n) => Object.values(rangeOutputs(n)));
  }
  protected initialState(): null {
    return null;
  }
  async predict(feeds: DenoiserFeeds, ctx: DenoiseContext, request: PredictRequest = {}): Promise<Prediction> {
    const r = await this.inner.predict(feeds, ctx, { ...request, outputs: [...(request.outputs ?? []), ...this.fetch] });
    this.calls++;
    this.size = { width: ctx.signature.width, height: ctx.signature.height };
    const scalar = (name: string) => Number((r.outputs[name] as { data: ArrayLike<number> }).data[0]);
    for (const name of this.observed) {
      const o = rangeOutputs(name);
      const range = this.ranges.get(name) ?? { min: Infinity, max: -Infinity };
      range.min = Math.min(range.min, scalar(o.min));
      range.max = Math.max(range.max, scalar(o.max));
      this.ranges.set(name, range);
    }
    for (const name of this.fetch) delete r.outputs[name];
    return r;
  }
}

/** What a calibration ran: how many values it observed, over how many denoiser calls, at what image size. */
export interface CalibrationRun {
  values: number;
  calls: number;
  width: number;
  height: number;
}

/**
 * Runs `calibration` on the ONNX folder, with `before` (the preceding algorithms' rewrites)
 * applied first, so observed names are those the calibrated transform will see. The prompts are
 * generated at `calibration.generation`'s size, else at `defaults` (the smashed pipeline's
 * generation defaults), else at the pipeline's default size.
 */
export async function calibrate(onnxDir: string, calibration: Calibration, before: (component: string, model: Model) => Model, opts: LoadPipelineOptions, defaults: GenerationDefaults = {}): Promise<CalibrationRun> {
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
      exposeRanges(m, observed);
      return m;
    },
  });
  try {
    pipe.generationDefaults = { ...pipe.generationDefaults, ...defaults };
    const observer = new Observer(pipe.denoiser, observed);
    pipe.denoiser = observer;
    const generation = Object.fromEntries(Object.entries(calibration.generation ?? {}).filter(([, v]) => v !== undefined));
    for (const [i, prompt] of calibration.prompts.entries()) {
      await pipe.generate({ ...generation, prompt, seed: i, ...(calibration.steps ? { steps: calibration.steps } : {}) });
    }
    calibration.calibrated(observer.ranges);
    return { values: observed.length, calls: observer.calls, ...observer.size };
  } finally {
    await pipe.release();
  }
}
