/** EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2, without churn). */
import {
  SchedulerConfig, TIMESTEP_SPACINGS, eulerInitNoiseSigma, f32, interpIndex, karrasSigmas, scaleBySigma, sigmaAlphasCumprod,
  sigmaToT, sigmasFromAlphasCumprod, spacedTimesteps, torchLinspaceF32, type TimestepSpacing,
} from './common.js';
import { SchedulerBase, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
  interpolation_type: 'linear',
  use_karras_sigmas: false,
  timestep_spacing: 'linspace',
  timestep_type: 'discrete',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
  final_sigmas_type: 'zero',
};

export class EulerDiscreteScheduler extends SchedulerBase {
  readonly className = 'EulerDiscreteScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly prediction: 'epsilon' | 'v_prediction' | 'sample' | 'original_sample';
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly interpolation: 'linear' | 'log_linear';
  private readonly karras: boolean;
  private readonly sigmaMin: number | null;
  private readonly sigmaMax: number | null;
  private readonly continuousV: boolean;
  private readonly finalSigmas: 'zero' | 'sigma_min';

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({ use_exponential_sigmas: [false, null], use_beta_sigmas: [false, null] });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = sigmaAlphasCumprod(cfg);
    this.prediction = cfg.oneOf('prediction_type', ['epsilon', 'v_prediction', 'sample', 'original_sample'] as const);
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.interpolation = cfg.oneOf('interpolation_type', ['linear', 'log_linear'] as const);
    this.karras = cfg.bool('use_karras_sigmas');
    this.sigmaMin = cfg.optNum('sigma_min');
    this.sigmaMax = cfg.optNum('sigma_max');
    const timestepType = cfg.oneOf('timestep_type', ['discrete', 'continuous'] as const);
    this.continuousV = timestepType === 'continuous' && this.prediction === 'v_prediction';
    this.finalSigmas = cfg.oneOf('final_sigmas_type', ['zero', 'sigma_min'] as const);
    this.config = cfg.values;
  }

  override get initNoiseSigma(): number {
    return eulerInitNoiseSigma(this.sigmas, this.spacing);
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    const n = numInferenceSteps;
    this.checkSteps(n, this.numTrain);
    this.numInferenceSteps = n;
    let timesteps = spacedTimesteps(this.spacing, this.numTrain, n, this.stepsOffset, false).map(f32);
    const train = sigmasFromAlphasCumprod(this.alphasCumprod);
    const logSigmas = train.map((s) => Math.log(s)); // float32, as np.log of a float32 array
    let sigmas: Float64Array;
    if (this.interpolation === 'linear') {
      sigmas = timesteps.map((t) => interpIndex(t, train));
    } else {
      // diffusers: torch.linspace(log sigma_max, log sigma_min, n + 1).exp() in float32, and the
      // final sigma is still appended: n + 2 sigmas, so the n steps end at sigma_min, never at 0
      const hi = f32(Math.log(train[train.length - 1]!));
      const lo = f32(Math.log(train[0]!));
      sigmas = Float64Array.from(torchLinspaceF32(hi, lo, n + 1), (v) => f32(Math.exp(v)));
    }
    if (this.karras) {
      sigmas = karrasSigmas(this.sigmaMin ?? sigmas[sigmas.length - 1]!, this.sigmaMax ?? sigmas[0]!, n);
      timesteps = sigmas.map((s) => sigmaToT(s, logSigmas));
    }
    const last = this.finalSigmas === 'zero' ? 0 : train[0]!;
    const all = new Float32Array(sigmas.length + 1);
    all.set(sigmas);
    all[sigmas.length] = last;
    this.sigmas = all;
    this.timesteps = this.continuousV
      ? Float32Array.from(all.subarray(0, all.length - 1), (s) => f32(0.25 * f32(Math.log(s))))
      : Float32Array.from(timesteps);
  }

  override scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    this.checkIndex(stepIndex);
    return scaleBySigma(sample, this.sigmas![stepIndex]!);
  }

  /** add_noise: x + σ · noise (latents live at the sigma scale). */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    return { a: 1, b: this.sigmas![stepIndex]! };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const sigma = this.sigmas![stepIndex]!;
    const dt = f32(this.sigmas![stepIndex + 1]! - sigma);
    const c2 = f32(f32(sigma * sigma) + 1);
    const c1 = f32(-sigma / f32(Math.sqrt(c2)));
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) {
      const s = sample[i]!;
      const m = modelOutput[i]!;
      let x0: number;
      if (this.prediction === 'epsilon') x0 = f32(s - f32(sigma * m));
      else if (this.prediction === 'v_prediction') x0 = f32(f32(m * c1) + f32(s / c2));
      else x0 = m;
      const derivative = f32(f32(s - x0) / sigma);
      out[i] = f32(s + f32(derivative * dt));
    }
    return out;
  }
}
