/** DDIMScheduler (Song et al. 2020), deterministic (eta = 0) as the diffusers pipelines run it. */
import {
  PREDICTION_TYPES, SchedulerConfig, TIMESTEP_SPACINGS, alphasCumprod, f32, makeBetas, predictX0Eps, spacedTimesteps,
  type PredictionType, type TimestepSpacing,
} from './common.js';
import { SchedulerBase, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  clip_sample_range: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
};

export class DDIMScheduler extends SchedulerBase {
  readonly className = 'DDIMScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  private readonly prediction: PredictionType;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly clipRange: number | null;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({ thresholding: [false] });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = alphasCumprod(makeBetas(cfg));
    this.finalAlphaCumprod = cfg.bool('set_alpha_to_one') ? 1 : this.alphasCumprod[0]!;
    this.prediction = cfg.oneOf('prediction_type', PREDICTION_TYPES);
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.clipRange = cfg.bool('clip_sample') ? f32(cfg.num('clip_sample_range', { positive: true })) : null;
    this.config = cfg.values;
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    this.checkSteps(numInferenceSteps, this.numTrain);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = Float32Array.from(spacedTimesteps(this.spacing, this.numTrain, numInferenceSteps, this.stepsOffset, true));
  }

  /** add_noise: sqrt(ᾱ_t) · x + sqrt(1 − ᾱ_t) · noise at the step's timestep. */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    const ac = this.alphasCumprod[Math.round(this.timesteps[stepIndex]!)]!;
    return { a: Math.fround(Math.sqrt(ac)), b: Math.fround(Math.sqrt(Math.fround(1 - ac))) };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const t = this.timesteps[stepIndex]!;
    // diffusers steps back by num_train // n whatever the spacing (so trailing misses its grid)
    const prev = t - Math.floor(this.numTrain / this.numInferenceSteps);
    const aT = this.alphasCumprod[t]!;
    const aPrev = prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
    const sa = f32(Math.sqrt(aT));
    const sb = f32(Math.sqrt(f32(1 - aT)));
    const saPrev = f32(Math.sqrt(aPrev));
    const dir = f32(Math.sqrt(f32(1 - aPrev)));
    const clip = this.clipRange;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      let [x0, eps] = predictX0Eps(this.prediction, m, s, sa, sb, true);
      if (clip !== null) x0 = Math.min(Math.max(x0, -clip), clip);
      out[i] = f32(f32(saPrev * x0) + f32(dir * eps));
    }
    return out;
  }
}
