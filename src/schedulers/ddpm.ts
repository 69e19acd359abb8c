/** DDPMScheduler (Ho et al. 2020): ancestral sampling with the posterior mean and fixed variance. */
import {
  PREDICTION_TYPES, SchedulerConfig, TIMESTEP_SPACINGS, alphasCumprod, drawNoise, f32, makeBetas, predictX0Eps,
  spacedTimesteps, type PredictionType, type TimestepSpacing,
} from './common.js';
import { SchedulerBase, type StepOptions, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  variance_type: 'fixed_small',
  clip_sample: true,
  prediction_type: 'epsilon',
  thresholding: false,
  clip_sample_range: 1.0,
  timestep_spacing: 'leading',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

/** The learned variances need a doubled-channel model output; fixed_large_log is broken upstream. */
const VARIANCE_TYPES = ['fixed_small', 'fixed_small_log', 'fixed_large'] as const;

export class DDPMScheduler extends SchedulerBase {
  readonly className = 'DDPMScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly prediction: PredictionType;
  private readonly varianceType: (typeof VARIANCE_TYPES)[number];
  private readonly clipRange: number | null;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({ thresholding: [false] });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = alphasCumprod(makeBetas(cfg, { extraSchedules: ['sigmoid'] }));
    this.prediction = cfg.oneOf('prediction_type', PREDICTION_TYPES);
    this.varianceType = cfg.oneOf('variance_type', VARIANCE_TYPES);
    this.clipRange = cfg.bool('clip_sample') ? f32(cfg.num('clip_sample_range', { positive: true })) : null;
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
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

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, opts?: StepOptions): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const t = this.timesteps[stepIndex]!;
    const prev = t - Math.floor(this.numTrain / this.numInferenceSteps);
    const aT = this.alphasCumprod[t]!;
    const aPrev = prev >= 0 ? this.alphasCumprod[prev]! : 1;
    const bT = f32(1 - aT);
    const bPrev = f32(1 - aPrev);
    const curAlpha = f32(aT / aPrev);
    const curBeta = f32(1 - curAlpha);
    const sa = f32(Math.sqrt(aT));
    const sb = f32(Math.sqrt(bT));
    const cX0 = f32(f32(f32(Math.sqrt(aPrev)) * curBeta) / bT);
    const cS = f32(f32(f32(Math.sqrt(curAlpha)) * bPrev) / bT);
    let std = 0;
    let noise: Float32Array | null = null;
    if (t > 0) {
      const variance = Math.max(f32(f32(bPrev / bT) * curBeta), 1e-20);
      if (this.varianceType === 'fixed_small') std = f32(Math.sqrt(variance));
      else if (this.varianceType === 'fixed_small_log') std = f32(Math.exp(f32(0.5 * f32(Math.log(variance)))));
      else std = f32(Math.sqrt(curBeta));
      noise = drawNoise(opts, sample.length, this.className);
    }
    const clip = this.clipRange;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      let [x0] = predictX0Eps(this.prediction, modelOutput[i]!, s, sa, sb, false);
      if (clip !== null) x0 = Math.min(Math.max(x0, -clip), clip);
      const mean = f32(f32(cX0 * x0) + f32(cS * s));
      out[i] = noise ? f32(mean + f32(std * noise[i]!)) : mean;
    }
    return out;
  }
}
