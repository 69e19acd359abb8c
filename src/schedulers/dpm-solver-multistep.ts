/** DPMSolverMultistepScheduler, DPM-Solver++ (Lu et al. 2022), orders 1-3, midpoint or heun. */
import {
  SchedulerConfig, TIMESTEP_SPACINGS, alphaSigmaLambda, f32, interpIndex, karrasSigmas, multistepTimesteps, npLinspace,
  roundHalfEven, sigmaAlphasCumprod, sigmaToT, sigmasFromAlphasCumprod, type TimestepSpacing,
} from './common.js';
import { SchedulerBase, type SetTimestepsOptions } from './scheduler.js';

const DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_lu_lambdas: false,
  final_sigmas_type: 'zero',
  lambda_min_clipped: -Infinity,
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export class DPMSolverMultistepScheduler extends SchedulerBase {
  readonly className = 'DPMSolverMultistepScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly lambdaT: Float32Array;
  private readonly order: number;
  private readonly prediction: 'epsilon' | 'sample' | 'v_prediction';
  private readonly heun: boolean;
  private readonly lowerOrderFinal: boolean;
  private readonly eulerAtFinal: boolean;
  private readonly karras: boolean;
  private readonly luLambdas: boolean;
  private readonly finalSigmas: 'zero' | 'sigma_min';
  private readonly lambdaMinClipped: number;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  /** Converted (x0) model outputs, newest last. */
  private history: Float32Array[] = [];
  private lowerOrderNums = 0;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({
      thresholding: [false],
      variance_type: [null],
      use_exponential_sigmas: [false, null],
      use_beta_sigmas: [false, null],
      use_flow_sigmas: [false, null],
    });
    // diffusers maps deis to dpmsolver++, and the UniPC/log-rho solver types to midpoint
    cfg.oneOf('algorithm_type', ['dpmsolver++', 'deis']);
    this.heun = cfg.oneOf('solver_type', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2']) === 'heun';
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = sigmaAlphasCumprod(cfg);
    this.lambdaT = this.alphasCumprod.map((a) => f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a)))))));
    this.order = cfg.oneOf('solver_order', [1, 2, 3]);
    this.prediction = cfg.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction'] as const);
    this.lowerOrderFinal = cfg.bool('lower_order_final');
    this.eulerAtFinal = cfg.bool('euler_at_final');
    this.karras = cfg.bool('use_karras_sigmas');
    this.luLambdas = cfg.bool('use_lu_lambdas');
    this.finalSigmas = cfg.oneOf('final_sigmas_type', ['zero', 'sigma_min'] as const);
    this.lambdaMinClipped = cfg.num('lambda_min_clipped');
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.config = cfg.values;
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    const n = numInferenceSteps;
    this.checkSteps(n, this.numTrain);
    // searchsorted over the flipped (ascending) lambdas: training steps clipped away at the low-noise end
    const clip = f32(this.lambdaMinClipped);
    let clipped = 0;
    for (let i = this.lambdaT.length - 1; i >= 0 && this.lambdaT[i]! < clip; i--) clipped++;
    let timesteps = multistepTimesteps(this.spacing, this.numTrain, n, this.stepsOffset, this.numTrain - clipped);
    const train = sigmasFromAlphasCumprod(this.alphasCumprod);
    const logSigmas = train.map((s) => Math.log(s));
    let sigmas: Float64Array;
    if (this.karras) {
      sigmas = karrasSigmas(train[0]!, train[train.length - 1]!, n);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
    } else if (this.luLambdas) {
      const lo = logSigmas[0]!;
      const hi = logSigmas[logSigmas.length - 1]!;
      sigmas = npLinspace(0, 1, n).map((r) => Math.exp(hi + r * (lo - hi)));
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
    } else {
      sigmas = timesteps.map((t) => interpIndex(t, train));
    }
    const all = new Float32Array(sigmas.length + 1);
    all.set(sigmas);
    all[sigmas.length] = this.finalSigmas === 'zero' ? 0 : train[0]!;
    this.sigmas = all;
    this.timesteps = Float32Array.from(timesteps);
    this.numInferenceSteps = timesteps.length;
    this.history = [];
    this.lowerOrderNums = 0;
    this.nextStep = 0;
    this.beginIndex = 0;
  }

  /** add_noise: α_σ · x + σ_σ · noise from the step's sigma (alpha_t = 1/sqrt(σ²+1)). */
  protected noiseCoefficients(stepIndex: number): { a: number; b: number } {
    const { alpha, sigma } = alphaSigmaLambda(this.sigmas![stepIndex]!);
    return { a: alpha, b: sigma };
  }

  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    this.checkArgs(modelOutput, stepIndex, sample);
    this.checkOrder(stepIndex);
    const len = this.timesteps.length;
    const short = this.lowerOrderFinal && len < 15;
    const lowerFinal = stepIndex === len - 1 && (this.eulerAtFinal || short || this.finalSigmas === 'zero');
    const lowerSecond = stepIndex === len - 2 && short;

    const x0 = this.convert(modelOutput, stepIndex, sample);
    this.history.push(x0);
    if (this.history.length > this.order) this.history.shift();

    let out: Float32Array;
    if (this.order === 1 || this.lowerOrderNums < 1 || lowerFinal) out = this.firstOrder(x0, stepIndex, sample);
    else if (this.order === 2 || this.lowerOrderNums < 2 || lowerSecond) out = this.secondOrder(stepIndex, sample);
    else out = this.thirdOrder(stepIndex, sample);
    if (this.lowerOrderNums < this.order) this.lowerOrderNums++;
    return out;
  }

  /** The model output as a data (x0) prediction. */
  private convert(mo: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    if (this.prediction === 'sample') return mo;
    const { alpha, sigma } = alphaSigmaLambda(this.sigmas![stepIndex]!);
    const out = new Float32Array(mo.length);
    if (this.prediction === 'epsilon') for (let i = 0; i < out.length; i++) out[i] = f32(f32(sample[i]! - f32(sigma * mo[i]!)) / alpha);
    else for (let i = 0; i < out.length; i++) out[i] = f32(f32(alpha * sample[i]!) - f32(sigma * mo[i]!));
    return out;
  }

  private firstOrder(m0: Float32Array, i: number, sample: Float32Array): Float32Array {
    const t = alphaSigmaLambda(this.sigmas![i + 1]!);
    const s0 = alphaSigmaLambda(this.sigmas![i]!);
    const h = f32(t.lambda - s0.lambda);
    const cs = f32(t.sigma / s0.sigma);
    const cm = f32(t.alpha * f32(f32(Math.exp(-h)) - 1));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(f32(cs * sample[k]!) - f32(cm * m0[k]!));
    return out;
  }

  private secondOrder(i: number, sample: Float32Array): Float32Array {
    const sg = this.sigmas!;
    const t = alphaSigmaLambda(sg[i + 1]!);
    const s0 = alphaSigmaLambda(sg[i]!);
    const s1 = alphaSigmaLambda(sg[i - 1]!);
    const m0 = this.history[this.history.length - 1]!;
    const m1 = this.history[this.history.length - 2]!;
    const h = f32(t.lambda - s0.lambda);
    const h0 = f32(s0.lambda - s1.lambda);
    const invR0 = f32(1 / f32(h0 / h));
    const em1 = f32(f32(Math.exp(-h)) - 1);
    const cs = f32(t.sigma / s0.sigma);
    const c0 = f32(t.alpha * em1);
    const out = new Float32Array(sample.length);
    if (this.heun) {
      const c1 = f32(t.alpha * f32(f32(em1 / h) + 1));
      for (let k = 0; k < out.length; k++) {
        const d1 = f32(invR0 * f32(m0[k]! - m1[k]!));
        out[k] = f32(f32(f32(cs * sample[k]!) - f32(c0 * m0[k]!)) + f32(c1 * d1));
      }
    } else {
      const c1 = f32(0.5 * c0);
      for (let k = 0; k < out.length; k++) {
        const d1 = f32(invR0 * f32(m0[k]! - m1[k]!));
        out[k] = f32(f32(f32(cs * sample[k]!) - f32(c0 * m0[k]!)) - f32(c1 * d1));
      }
    }
    return out;
  }

  private thirdOrder(i: number, sample: Float32Array): Float32Array {
    const sg = this.sigmas!;
    const t = alphaSigmaLambda(sg[i + 1]!);
    const s0 = alphaSigmaLambda(sg[i]!);
    const s1 = alphaSigmaLambda(sg[i - 1]!);
    const s2 = alphaSigmaLambda(sg[i - 2]!);
    const hist = this.history;
    const [m2, m1, m0] = [hist[hist.length - 3]!, hist[hist.length - 2]!, hist[hist.length - 1]!];
    const h = f32(t.lambda - s0.lambda);
    const r0 = f32(f32(s0.lambda - s1.lambda) / h);
    const r1 = f32(f32(s1.lambda - s2.lambda) / h);
    const invR0 = f32(1 / r0);
    const invR1 = f32(1 / r1);
    const w = f32(r0 / f32(r0 + r1));
    const invSum = f32(1 / f32(r0 + r1));
    const em1 = f32(f32(Math.exp(-h)) - 1);
    const cs = f32(t.sigma / s0.sigma);
    const c0 = f32(t.alpha * em1);
    const c1 = f32(t.alpha * f32(f32(em1 / h) + 1));
    const c2 = f32(t.alpha * f32(f32(f32(em1 + h) / f32(h * h)) - 0.5));
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      const d10 = f32(invR0 * f32(m0[k]! - m1[k]!));
      const d11 = f32(invR1 * f32(m1[k]! - m2[k]!));
      const diff = f32(d10 - d11);
      const d1 = f32(d10 + f32(w * diff));
      const d2 = f32(invSum * diff);
      out[k] = f32(f32(f32(f32(cs * sample[k]!) - f32(c0 * m0[k]!)) + f32(c1 * d1)) - f32(c2 * d2));
    }
    return out;
  }
}
