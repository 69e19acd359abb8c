/** LCMScheduler (latent consistency models): x0 via the consistency boundary condition, then re-noise. */
import { SmashError } from '../errors.js';
import {
  PREDICTION_TYPES, SchedulerConfig, alphasCumprod, drawNoise, f32, makeBetas, predictX0Eps, type PredictionType,
} from './common.js';
import { SchedulerBase, type StepOptions, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  original_inference_steps: 50,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  prediction_type: 'epsilon',
  thresholding: false,
  timestep_scaling: 10.0,
  rescale_betas_zero_snr: false,
};

export class LCMScheduler extends SchedulerBase {
  readonly className = 'LCMScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  private readonly prediction: PredictionType;
  private readonly clipRange: number | null;
  private readonly originalSteps: number;
  private readonly timestepScaling: number;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({ thresholding: [false] });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = alphasCumprod(makeBetas(cfg));
    this.finalAlphaCumprod = cfg.bool('set_alpha_to_one') ? 1 : this.alphasCumprod[0]!;
    this.prediction = cfg.oneOf('prediction_type', PREDICTION_TYPES);
    this.clipRange = cfg.bool('clip_sample') ? f32(cfg.num('clip_sample_range', { positive: true })) : null;
    this.originalSteps = cfg.num('original_inference_steps', { integer: true, min: 1 });
    if (this.originalSteps > this.numTrain) throw cfg.unsupported('original_inference_steps', [`1..${this.numTrain}`]);
    this.timestepScaling = cfg.num('timestep_scaling');
    this.config = cfg.values;
  }

  /** LCM ignores timestep_spacing/steps_offset: it picks evenly among the distillation timesteps. */
  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    const n = numInferenceSteps;
    this.checkSteps(n, this.numTrain);
    if (n > this.originalSteps) {
      throw new SmashError('SCHEDULER_STEPS', `${this.className}: numInferenceSteps ${n} exceeds original_inference_steps ${this.originalSteps}`);
    }
    this.numInferenceSteps = n;
    const k = Math.floor(this.numTrain / this.originalSteps);
    const orig = this.originalSteps; // origin timesteps, descending: orig*k-1, ..., k-1
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const idx = Math.floor(i * (orig / n)); // np.floor(np.linspace(0, orig, n, endpoint=False))
      t[i] = (orig - idx) * k - 1;
    }
    this.timesteps = t;
  }

  /** add_noise: sqrt(ᾱ_t) · x + sqrt(1 − ᾱ_t) · noise at the step's timestep. */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    const ac = this.alphasCumprod[Math.round(this.timesteps[stepIndex]!)]!;
    return { a: Math.fround(Math.sqrt(ac)), b: Math.fround(Math.sqrt(Math.fround(1 - ac))) };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, opts?: StepOptions): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const t = this.timesteps[stepIndex]!;
    const prev = stepIndex + 1 < this.timesteps.length ? this.timesteps[stepIndex + 1]! : t;
    const aT = this.alphasCumprod[t]!;
    const aPrev = prev >= 0 ? this.alphasCumprod[prev]! : this.finalAlphaCumprod;
    const sa = f32(Math.sqrt(aT));
    const sb = f32(Math.sqrt(f32(1 - aT)));
    // boundary condition scalings, sigma_data = 0.5
    const scaled = f32(t * this.timestepScaling);
    const denom = f32(f32(scaled * scaled) + 0.25);
    const cSkip = f32(0.25 / denom);
    const cOut = f32(scaled / f32(Math.sqrt(denom)));
    const last = stepIndex === this.numInferenceSteps - 1;
    const noise = last ? null : drawNoise(opts, sample.length, this.className);
    const saPrev = f32(Math.sqrt(aPrev));
    const sbPrev = f32(Math.sqrt(f32(1 - aPrev)));
    const clip = this.clipRange;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      let [x0] = predictX0Eps(this.prediction, modelOutput[i]!, s, sa, sb, false);
      if (clip !== null) x0 = Math.min(Math.max(x0, -clip), clip);
      const denoised = f32(f32(cOut * x0) + f32(cSkip * s));
      out[i] = noise ? f32(f32(saPrev * denoised) + f32(sbPrev * noise[i]!)) : denoised;
    }
    return out;
  }
}
