/** EulerAncestralDiscreteScheduler: Euler steps to sigma_down plus fresh noise of sigma_up. */
import {
  SchedulerConfig, TIMESTEP_SPACINGS, drawNoise, eulerInitNoiseSigma, f32, interpIndex, scaleBySigma, sigmaAlphasCumprod,
  sigmasFromAlphasCumprod, spacedTimesteps, type TimestepSpacing,
} from './common.js';
import { SchedulerBase, type StepOptions, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export class EulerAncestralDiscreteScheduler extends SchedulerBase {
  readonly className = 'EulerAncestralDiscreteScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly vPrediction: boolean;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = sigmaAlphasCumprod(cfg);
    // diffusers has no `sample` prediction here either
    this.vPrediction = cfg.oneOf('prediction_type', ['epsilon', 'v_prediction']) === 'v_prediction';
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.config = cfg.values;
  }

  override get initNoiseSigma(): number {
    return eulerInitNoiseSigma(this.sigmas, this.spacing);
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    this.checkSteps(numInferenceSteps, this.numTrain);
    this.numInferenceSteps = numInferenceSteps;
    const timesteps = spacedTimesteps(this.spacing, this.numTrain, numInferenceSteps, this.stepsOffset, false).map(f32);
    const train = sigmasFromAlphasCumprod(this.alphasCumprod);
    const sigmas = new Float32Array(timesteps.length + 1);
    timesteps.forEach((t, i) => (sigmas[i] = interpIndex(t, train)));
    this.sigmas = sigmas;
    this.timesteps = Float32Array.from(timesteps);
  }

  override scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    this.checkIndex(stepIndex);
    return scaleBySigma(sample, this.sigmas![stepIndex]!);
  }

  /** add_noise: x + σ · noise (latents live at the sigma scale). */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    return { a: 1, b: this.sigmas![stepIndex]! };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, opts?: StepOptions): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const sigmas = this.sigmas!;
    const sigma = sigmas[stepIndex]!;
    const sigmaTo = sigmas[stepIndex + 1]!;
    const from2 = f32(sigma * sigma);
    const to2 = f32(sigmaTo * sigmaTo);
    const sigmaUp = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const sigmaDown = f32(Math.sqrt(f32(to2 - f32(sigmaUp * sigmaUp))));
    const dt = f32(sigmaDown - sigma);
    const c2 = f32(from2 + 1);
    const c1 = f32(-sigma / f32(Math.sqrt(c2)));
    const noise = drawNoise(opts, sample.length, this.className);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      const x0 = this.vPrediction ? f32(f32(m * c1) + f32(s / c2)) : f32(s - f32(sigma * m));
      const derivative = f32(f32(s - x0) / sigma);
      const prev = f32(s + f32(derivative * dt));
      out[i] = f32(prev + f32(noise[i]! * sigmaUp));
    }
    return out;
  }
}
