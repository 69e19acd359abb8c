/** PNDMScheduler in its PLMS-only form (`skip_prk_steps: true`, as Stable Diffusion ships it). */
import { SchedulerConfig, TIMESTEP_SPACINGS, alphasCumprod, f32, makeBetas, spacedTimesteps, type TimestepSpacing } from './common.js';
import { SchedulerBase, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
};

export class PNDMScheduler extends SchedulerBase {
  readonly className = 'PNDMScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  private readonly vPrediction: boolean;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  /** Past raw model outputs (at most 4). */
  private ets: Float32Array[] = [];
  private curSample: Float32Array | null = null;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.oneOf('skip_prk_steps', [true], 'the Runge-Kutta warm-up steps are not implemented');
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = alphasCumprod(makeBetas(cfg, { hasRescale: false }));
    this.finalAlphaCumprod = cfg.bool('set_alpha_to_one') ? 1 : this.alphasCumprod[0]!;
    this.vPrediction = cfg.oneOf('prediction_type', ['epsilon', 'v_prediction']) === 'v_prediction';
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.config = cfg.values;
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    this.checkSteps(numInferenceSteps, this.numTrain);
    this.numInferenceSteps = numInferenceSteps;
    const asc = Array.from(spacedTimesteps(this.spacing, this.numTrain, numInferenceSteps, this.stepsOffset, true)).reverse();
    const n = asc.length;
    // PLMS repeats the second-highest timestep: its first two model calls form one Heun-like step
    const plms = [...asc.slice(0, n - 1), ...asc.slice(Math.max(0, n - 2), n - 1), asc[n - 1]!].reverse();
    this.timesteps = Float32Array.from(plms);
    this.ets = [];
    this.curSample = null;
    this.nextStep = 0;
    this.beginIndex = 0;
  }

  /** add_noise: sqrt(ᾱ_t) · x + sqrt(1 − ᾱ_t) · noise at the step's timestep. */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    const ac = this.alphasCumprod[Math.round(this.timesteps[stepIndex]!)]!;
    return { a: Math.fround(Math.sqrt(ac)), b: Math.fround(Math.sqrt(Math.fround(1 - ac))) };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    this.checkOrder(stepIndex);
    const ratio = Math.floor(this.numTrain / this.numInferenceSteps);
    const counter = stepIndex - this.beginIndex; // diffusers' counter: steps taken
    let t = this.timesteps[stepIndex]!;
    let prev = t - ratio;
    if (counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput);
    } else {
      prev = t;
      t = t + ratio;
    }
    const e = this.ets;
    const k = e.length;
    const n = sample.length;
    let eps: Float32Array;
    let x = sample;
    if (k === 1 && counter === 0) {
      eps = modelOutput;
      this.curSample = sample;
    } else if (k === 1 && counter === 1) {
      const e1 = e[0]!;
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f32(f32(modelOutput[i]! + e1[i]!) / 2);
      x = this.curSample!;
      this.curSample = null;
    } else if (k === 2) {
      const [e2, e1] = [e[0]!, e[1]!];
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f32(f32(f32(3 * e1[i]!) - e2[i]!) / 2);
    } else if (k === 3) {
      const [e3, e2, e1] = [e[0]!, e[1]!, e[2]!];
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) eps[i] = f32(f32(f32(f32(23 * e1[i]!) - f32(16 * e2[i]!)) + f32(5 * e3[i]!)) / 12);
    } else {
      const [e4, e3, e2, e1] = [e[0]!, e[1]!, e[2]!, e[3]!];
      const c = f32(1 / 24);
      eps = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        eps[i] = f32(c * f32(f32(f32(f32(55 * e1[i]!) - f32(59 * e2[i]!)) + f32(37 * e3[i]!)) - f32(9 * e4[i]!)));
      }
    }
    return this.prevSample(x, t, prev, eps);
  }

  /** Formula (9) of the PNDM paper: x_t -> x_(t - delta). */
  private prevSample(sample: Float32Array, t: number, prev: number, mo: Float32Array): Float32Array {
    const aT = this.alphasCumprod[t]!;
    const aPrev = prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
    const bT = f32(1 - aT);
    const bPrev = f32(1 - aPrev);
    const sa = f32(Math.sqrt(aT));
    const sb = f32(Math.sqrt(bT));
    const sampleCoeff = f32(Math.sqrt(f32(aPrev / aT)));
    const denom = f32(f32(aT * f32(Math.sqrt(bPrev))) + f32(Math.sqrt(f32(f32(aT * bT) * aPrev))));
    const diff = f32(aPrev - aT);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      const m = this.vPrediction ? f32(f32(sa * mo[i]!) + f32(sb * s)) : mo[i]!;
      out[i] = f32(f32(sampleCoeff * s) - f32(f32(diff * m) / denom));
    }
    return out;
  }
}
