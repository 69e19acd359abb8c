/** FlowMatchEulerDiscreteScheduler (rectified flow: SD3, Flux), static or resolution-dependent shift. */
import { ConfigError } from '../errors.js';
import { SchedulerConfig, f32, npLinspace } from './common.js';
import { SchedulerBase, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  shift: 1.0,
  use_dynamic_shifting: false,
  base_shift: 0.5,
  max_shift: 1.15,
  base_image_seq_len: 256,
  max_image_seq_len: 4096,
};

/**
 * The Flux pipeline's `mu` for an image of `imageSeqLen` latent tokens: linear from base_shift
 * at base_image_seq_len to max_shift at max_image_seq_len.
 */
export function calculateShift(imageSeqLen: number, config: Record<string, unknown> = {}): number {
  const num = (k: keyof typeof DEFAULTS) => (typeof config[k] === 'number' ? (config[k] as number) : (DEFAULTS[k] as number));
  const m = (num('max_shift') - num('base_shift')) / (num('max_image_seq_len') - num('base_image_seq_len'));
  const b = num('base_shift') - m * num('base_image_seq_len');
  return imageSeqLen * m + b;
}

export class FlowMatchEulerDiscreteScheduler extends SchedulerBase {
  readonly className = 'FlowMatchEulerDiscreteScheduler';
  override readonly acceptsSigmas = true;
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly shift: number;
  private readonly dynamic: boolean;
  private readonly sigmaMin: number;
  private readonly sigmaMax: number;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({
      invert_sigmas: [false, null],
      shift_terminal: [null],
      use_karras_sigmas: [false, null],
      use_exponential_sigmas: [false, null],
      use_beta_sigmas: [false, null],
      time_shift_type: ['exponential', null],
      stochastic_sampling: [false, null],
    });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.shift = cfg.num('shift', { positive: true });
    this.dynamic = cfg.bool('use_dynamic_shifting');
    // the training schedule's ends (already shifted when the shift is static; set_timesteps shifts again, as diffusers does)
    const T = this.numTrain;
    const ends = [T, 1].map((t) => {
      const s = f32(t / T);
      return this.dynamic ? s : f32(f32(f32(this.shift) * s) / f32(1 + f32(f32(this.shift - 1) * s)));
    });
    this.sigmaMax = ends[0]!;
    this.sigmaMin = ends[1]!;
    this.config = cfg.values;
  }

  /**
   * `opts.mu` is required with `use_dynamic_shifting` (see `calculateShift`). `opts.sigmas` (one
   * per step) replaces the default linspace from sigma_max to sigma_min, as diffusers'
   * set_timesteps(sigmas=...): cast to float32, then shifted in float32 (numpy float32 arrays).
   */
  setTimesteps(numInferenceSteps: number, opts: SetTimestepsOptions = {}): void {
    const n = numInferenceSteps;
    this.checkSteps(n, this.numTrain);
    const { mu, sigmas: custom } = opts;
    if (this.dynamic && (typeof mu !== 'number' || !Number.isFinite(mu))) {
      throw new ConfigError('SCHEDULER_MU_REQUIRED', `${this.className}: use_dynamic_shifting is true, so setTimesteps needs opts.mu (see calculateShift)`, 'mu');
    }
    if (custom !== undefined && (custom.length !== n || !Array.from(custom).every((x) => Number.isFinite(x) && x >= 0))) {
      throw new ConfigError('SCHEDULER_SIGMAS', `${this.className}: sigmas must be ${n} finite numbers >= 0 (one per step), got ${custom.length}`, 'sigmas');
    }
    this.numInferenceSteps = n;
    const T = this.numTrain;
    const sigmas = new Float32Array(n + 1);
    const em = this.dynamic ? Math.exp(mu!) : 0;
    if (custom === undefined) {
      // float64, as numpy computes from np.linspace
      const t = npLinspace(this.sigmaMax * T, this.sigmaMin * T, n);
      for (let i = 0; i < n; i++) {
        const s = t[i]! / T;
        sigmas[i] = this.dynamic ? em / (em + (1 / s - 1)) : (this.shift * s) / (1 + (this.shift - 1) * s);
      }
    } else {
      const e = f32(em);
      const k = f32(this.shift);
      const k1 = f32(this.shift - 1);
      for (let i = 0; i < n; i++) {
        const s = f32(custom[i]!);
        sigmas[i] = this.dynamic ? f32(e / f32(e + f32(f32(1 / s) - 1))) : f32(f32(k * s) / f32(1 + f32(k1 * s)));
      }
    }
    this.sigmas = sigmas;
    this.timesteps = Float32Array.from(sigmas.subarray(0, n), (s) => f32(s * T));
  }

  /** scale_noise: σ · noise + (1 − σ) · x. */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    const s = this.sigmas![stepIndex]!;
    return { a: Math.fround(1 - s), b: s };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    const dt = f32(this.sigmas![stepIndex + 1]! - this.sigmas![stepIndex]!);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(sample[i]! + f32(dt * modelOutput[i]!));
    return out;
  }
}
