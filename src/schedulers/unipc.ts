/** UniPCMultistepScheduler (Zhao et al. 2023): UniP predictor + UniC corrector, B(h) = bh1 or bh2. */
import {
  SchedulerConfig, TIMESTEP_SPACINGS, alphaSigmaLambda, f32, interpIndex, karrasSigmas, multistepTimesteps,
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
  predict_x0: true,
  solver_type: 'bh2',
  lower_order_final: true,
  disable_corrector: [],
  use_karras_sigmas: false,
  timestep_spacing: 'linspace',
  steps_offset: 0,
  final_sigmas_type: 'zero',
  rescale_betas_zero_snr: false,
};

/** Solves the small dense system A x = b (Gaussian elimination, partial pivoting). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const m = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

export class UniPCMultistepScheduler extends SchedulerBase {
  readonly className = 'UniPCMultistepScheduler';
  readonly config: Record<string, unknown>;
  private readonly numTrain: number;
  private readonly alphasCumprod: Float32Array;
  private readonly order: number;
  private readonly prediction: 'epsilon' | 'sample' | 'v_prediction';
  private readonly predictX0: boolean;
  private readonly bh1: boolean;
  private readonly lowerOrderFinal: boolean;
  private readonly disableCorrector: number[];
  private readonly karras: boolean;
  private readonly finalSigmas: 'zero' | 'sigma_min';
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  /** Converted model outputs, newest last (at most solver_order). */
  private history: Float32Array[] = [];
  private lowerOrderNums = 0;
  private lastSample: Float32Array | null = null;
  private thisOrder = 1;

  constructor(config: object) {
    super();
    const cfg = new SchedulerConfig(this.className, config, DEFAULTS);
    cfg.requireNeutral({
      thresholding: [false],
      solver_p: [null],
      use_exponential_sigmas: [false, null],
      use_beta_sigmas: [false, null],
      use_flow_sigmas: [false, null],
    });
    this.numTrain = cfg.num('num_train_timesteps', { integer: true, min: 2 });
    this.alphasCumprod = sigmaAlphasCumprod(cfg);
    this.order = cfg.oneOf('solver_order', [1, 2, 3]);
    this.prediction = cfg.oneOf('prediction_type', ['epsilon', 'sample', 'v_prediction'] as const);
    this.predictX0 = cfg.bool('predict_x0');
    // diffusers maps the DPM-Solver solver types to bh2
    this.bh1 = cfg.oneOf('solver_type', ['bh1', 'bh2', 'midpoint', 'heun', 'logrho']) === 'bh1';
    this.lowerOrderFinal = cfg.bool('lower_order_final');
    this.disableCorrector = cfg.optNumArray('disable_corrector') ?? [];
    this.karras = cfg.bool('use_karras_sigmas');
    this.finalSigmas = cfg.oneOf('final_sigmas_type', ['zero', 'sigma_min'] as const);
    if (!this.predictX0 && this.finalSigmas === 'zero') {
      // the noise-prediction update computes 0 * inf on the last step (NaN in diffusers too)
      throw cfg.unsupported('final_sigmas_type', ['sigma_min'], 'with predict_x0 = false');
    }
    if (this.bh1 && this.finalSigmas === 'zero') {
      // B(h) = h is -inf on the step to sigma 0: diffusers 0.30.3 ends in NaN, so there is no
      // reference to match; bh2 or final_sigmas_type sigma_min are referenced
      throw cfg.unsupported('final_sigmas_type', ['sigma_min'], 'with solver_type = bh1, whose last step is NaN in diffusers; bh2 allows zero');
    }
    this.spacing = cfg.oneOf('timestep_spacing', TIMESTEP_SPACINGS);
    this.stepsOffset = cfg.num('steps_offset', { integer: true });
    this.config = cfg.values;
  }

  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void {
    this.rejectSigmas(opts);
    const n = numInferenceSteps;
    this.checkSteps(n, this.numTrain);
    let timesteps = multistepTimesteps(this.spacing, this.numTrain, n, this.stepsOffset);
    const train = sigmasFromAlphasCumprod(this.alphasCumprod);
    let sigmas: Float64Array;
    let last: number;
    if (this.karras) {
      const logSigmas = train.map((s) => Math.log(s));
      sigmas = karrasSigmas(train[0]!, train[train.length - 1]!, n);
      timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
      last = this.finalSigmas === 'zero' ? 0 : sigmas[sigmas.length - 1]!;
    } else {
      sigmas = timesteps.map((t) => interpIndex(t, train));
      last = this.finalSigmas === 'zero' ? 0 : train[0]!;
    }
    const all = new Float32Array(sigmas.length + 1);
    all.set(sigmas);
    all[sigmas.length] = last;
    this.sigmas = all;
    this.timesteps = Float32Array.from(timesteps);
    this.numInferenceSteps = timesteps.length;
    this.history = [];
    this.lowerOrderNums = 0;
    this.lastSample = null;
    this.thisOrder = 1;
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
    const useCorrector = stepIndex > 0 && !this.disableCorrector.includes(stepIndex - 1) && this.lastSample !== null;
    const converted = this.convert(modelOutput, stepIndex, sample);
    let x = sample;
    if (useCorrector) x = this.update(stepIndex, this.thisOrder, this.lastSample!, converted);
    this.history.push(converted);
    if (this.history.length > this.order) this.history.shift();
    const len = this.timesteps.length;
    const order = this.lowerOrderFinal ? Math.min(this.order, len - stepIndex) : this.order;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1); // warm-up
    this.lastSample = x;
    const prev = this.update(stepIndex, this.thisOrder, x, null);
    if (this.lowerOrderNums < this.order) this.lowerOrderNums++;
    return prev;
  }

  /** The model output as x0 (predict_x0) or as epsilon. */
  private convert(mo: Float32Array, stepIndex: number, sample: Float32Array): Float32Array {
    const { alpha, sigma } = alphaSigmaLambda(this.sigmas![stepIndex]!);
    const out = new Float32Array(mo.length);
    const p = this.prediction;
    if (this.predictX0) {
      if (p === 'sample') return mo;
      if (p === 'epsilon') for (let i = 0; i < out.length; i++) out[i] = f32(f32(sample[i]! - f32(sigma * mo[i]!)) / alpha);
      else for (let i = 0; i < out.length; i++) out[i] = f32(f32(alpha * sample[i]!) - f32(sigma * mo[i]!));
    } else {
      if (p === 'epsilon') return mo;
      if (p === 'sample') for (let i = 0; i < out.length; i++) out[i] = f32(f32(sample[i]! - f32(alpha * mo[i]!)) / sigma);
      else for (let i = 0; i < out.length; i++) out[i] = f32(f32(alpha * mo[i]!) + f32(sigma * sample[i]!));
    }
    return out;
  }

  /**
   * One UniP (modelT null: predict from `x` at step i to i+1) or UniC update (modelT = the new
   * converted output at step i: correct the sample predicted from `x` at step i-1). The history
   * holds the outputs up to step i for UniP, up to step i-1 for UniC.
   */
  private update(i: number, order: number, x: Float32Array, modelT: Float32Array | null): Float32Array {
    const corrector = modelT !== null;
    const sg = this.sigmas!;
    const base = corrector ? i - 1 : i; // the step x belongs to
    const t = alphaSigmaLambda(sg[base + 1]!);
    const s0 = alphaSigmaLambda(sg[base]!);
    const hist = this.history;
    const m0 = hist[hist.length - 1]!;
    const h = f32(t.lambda - s0.lambda);
    const n = x.length;

    const rks: number[] = [];
    const D1s: Float32Array[] = [];
    for (let k = 1; k < order; k++) {
      const si = alphaSigmaLambda(sg[base - k]!);
      const mi = hist[hist.length - 1 - k]!;
      const rk = f32(f32(si.lambda - s0.lambda) / h);
      rks.push(rk);
      const d = new Float32Array(n);
      for (let e = 0; e < n; e++) d[e] = f32(f32(mi[e]! - m0[e]!) / rk);
      D1s.push(d);
    }
    rks.push(1);

    const hh = this.predictX0 ? -h : h;
    const hPhi1 = f32(Math.expm1(hh));
    let hPhiK = f32(f32(hPhi1 / hh) - 1);
    let fact = 1;
    const Bh = this.bh1 ? hh : f32(Math.expm1(hh));
    const R: number[][] = [];
    const b: number[] = [];
    for (let k = 1; k <= order; k++) {
      R.push(rks.map((r) => f32(r ** (k - 1))));
      b.push(f32(f32(hPhiK * fact) / Bh));
      fact *= k + 1;
      hPhiK = f32(f32(hPhiK / hh) - f32(1 / fact));
    }

    let rhos: number[];
    if (corrector) rhos = order === 1 ? [0.5] : solve(R, b).map(f32);
    else if (D1s.length === 0) rhos = [];
    else rhos = order === 2 ? [0.5] : solve(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1)).map(f32);

    const cx = this.predictX0 ? f32(t.sigma / s0.sigma) : f32(t.alpha / s0.alpha);
    const lead = this.predictX0 ? t.alpha : t.sigma;
    const cm = f32(lead * hPhi1);
    const cr = f32(lead * Bh);
    const out = new Float32Array(n);
    for (let e = 0; e < n; e++) {
      const xt = f32(f32(cx * x[e]!) - f32(cm * m0[e]!));
      let res = 0;
      for (let k = 0; k < D1s.length; k++) res = k === 0 ? f32(rhos[k]! * D1s[k]![e]!) : f32(res + f32(rhos[k]! * D1s[k]![e]!));
      if (corrector) res = f32(res + f32(rhos[rhos.length - 1]! * f32(modelT[e]! - m0[e]!)));
      // no residual term at all: skip it (diffusers computes B(h) * 0, NaN for bh1 when the final sigma is 0)
      out[e] = corrector || D1s.length > 0 ? f32(xt - f32(cr * res)) : xt;
    }
    return out;
  }
}
