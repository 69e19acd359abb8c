/**
 * Math and config plumbing shared by the schedulers. diffusers mixes torch float32 (betas,
 * alphas_cumprod, per-step scalars) with numpy float64 (timestep spacing, interpolated sigmas);
 * the helpers here say which one they follow, so each scheduler lands on the same floats.
 */
import { ConfigError } from '../errors.js';
import type { Generator } from '../tensors/random.js';
import type { StepOptions } from './scheduler.js';

/** Rounds to float32, as every torch float32 op does. */
export const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// Config reading

/** Error codes used by the schedulers. */
export const SCHEDULER_UNSUPPORTED = 'SCHEDULER_UNSUPPORTED';
export const SCHEDULER_CONFIG_INVALID = 'SCHEDULER_CONFIG_INVALID';

const show = (v: unknown): string => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v));

/**
 * A scheduler config merged over diffusers' defaults. `null` counts as absent (diffusers writes
 * `null` for unset optional keys). Keys we do not read are ignored; values we read are checked.
 */
export class SchedulerConfig {
  readonly values: Record<string, unknown>;

  constructor(readonly className: string, raw: object, defaults: Record<string, unknown>) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ConfigError(SCHEDULER_CONFIG_INVALID, `${className}: the scheduler config must be a JSON object`);
    }
    const merged: Record<string, unknown> = { ...defaults };
    for (const [k, v] of Object.entries(raw)) {
      if (v === null || v === undefined) continue;
      merged[k] = v;
    }
    this.values = merged;
  }

  private invalid(key: string, what: string): ConfigError {
    return new ConfigError(SCHEDULER_CONFIG_INVALID, `${this.className}: ${key} = ${show(this.values[key])} is invalid; expected ${what}`, key);
  }

  /** Throws the "not supported" error for `key`, listing what we do support. */
  unsupported(key: string, supported: readonly unknown[], note = ''): ConfigError {
    return new ConfigError(
      SCHEDULER_UNSUPPORTED,
      `${this.className}: ${key} = ${show(this.values[key])} is not supported${note ? ` (${note})` : ''}; supported: ${supported.map(show).join(', ')}`,
      key,
    );
  }

  num(key: string, opts: { integer?: boolean; min?: number; positive?: boolean } = {}): number {
    const v = this.values[key];
    if (typeof v !== 'number' || Number.isNaN(v)) throw this.invalid(key, opts.integer ? 'an integer' : 'a number');
    if (opts.integer && !Number.isSafeInteger(v)) throw this.invalid(key, 'an integer');
    if (opts.min !== undefined && v < opts.min) throw this.invalid(key, `a number >= ${opts.min}`);
    if (opts.positive && !(v > 0)) throw this.invalid(key, 'a positive number');
    return v;
  }

  /** A number or null (null when absent). */
  optNum(key: string): number | null {
    return this.values[key] === undefined ? null : this.num(key);
  }

  bool(key: string): boolean {
    const v = this.values[key];
    if (typeof v !== 'boolean') throw this.invalid(key, 'true or false');
    return v;
  }

  /** A value that must be one of `allowed` (strings, booleans, null...). */
  oneOf<T>(key: string, allowed: readonly T[], note = ''): T {
    const v = this.values[key] === undefined ? null : this.values[key];
    if (!allowed.includes(v as T)) throw this.unsupported(key, allowed, note);
    return v as T;
  }

  /** A list of numbers or null. */
  optNumArray(key: string): number[] | null {
    const v = this.values[key];
    if (v === undefined) return null;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw this.invalid(key, 'a list of numbers');
    return v as number[];
  }

  /**
   * Keys of newer diffusers versions (or options we leave out) that change the math unless they
   * hold their neutral value: anything else is refused rather than silently ignored.
   */
  requireNeutral(neutral: Record<string, readonly unknown[]>): void {
    for (const [key, allowed] of Object.entries(neutral)) this.oneOf(key, allowed, 'not implemented');
  }
}

/**
 * Parses a config file as Python's `json` writes it: `NaN`, `Infinity` and `-Infinity` may appear
 * as bare tokens (diffusers stores `lambda_min_clipped: -Infinity`).
 */
export function parseConfigJson(text: string): unknown {
  const tag = '\u0000smash-num:';
  const fixed = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : JSON.stringify(tag + m)));
  return JSON.parse(fixed, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(tag) ? Number(v.slice(tag.length)) : v));
}

// ---------------------------------------------------------------------------------------------
// numpy emulation (float64)

/** numpy's round: half to even. */
export function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const d = x - fl;
  if (d > 0.5) return fl + 1;
  if (d < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** `np.linspace(start, stop, num)` in float64 (i * step + start, last point exactly `stop`). */
export function npLinspace(start: number, stop: number, num: number, endpoint = true): Float64Array {
  const out = new Float64Array(num);
  if (num === 0) return out;
  const div = endpoint ? num - 1 : num;
  const step = div > 0 ? (stop - start) / div : 0;
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** `np.arange(start, stop, step)` for floats: length ceil((stop-start)/step), start + i*delta. */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(len);
  const delta = start + step - start;
  for (let i = 0; i < len; i++) out[i] = i === 0 ? start : start + i * delta;
  return out;
}

/** `np.interp(x, arange(len(fp)), fp)`: linear interpolation on an integer grid. */
export function interpIndex(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (x <= 0) return fp[0]!;
  if (x >= n - 1) return fp[n - 1]!;
  const j = Math.floor(x);
  return (fp[j + 1]! - fp[j]!) * (x - j) + fp[j]!;
}

// ---------------------------------------------------------------------------------------------
// Noise schedules (torch float32)

/**
 * `torch.linspace(start, end, steps, dtype=float32)` as the CPU kernel computes it: 8-wide vectors
 * (base + k*step) from whichever end is nearer, scalar code for the tail, each product added
 * unrounded (as a fused multiply-add would). This reproduces torch's betas bit for bit: with it
 * every fixture sigma matches exactly, rounding the products breaks about half of them.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // float32 step times an integer below 2^24 is exact in float64, so only the sum rounds
  const scalarAt = (idx: number) => (idx < halfway ? f32(s + step * idx) : f32(e - step * (steps - idx - 1)));
  const V = 8;
  let i = 0;
  for (; i <= steps - 2 * V; i += V) {
    const base = scalarAt(i);
    for (let k = 0; k < V; k++) out[i + k] = f32(base + k * step);
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** diffusers' `betas_for_alpha_bar` (cosine): float64 math, stored as float32. */
function betasForAlphaBar(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return out;
}

/** Zero-terminal-SNR rescaling (arXiv 2305.08891, Algorithm 1), in float32 like torch. */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const ac = cumprodF32(alphasFromBetas(betas));
  const sq = ac.map((a) => f32(Math.sqrt(a)));
  const a0 = sq[0]!;
  const aT = sq[n - 1]!;
  const scale = f32(a0 / f32(a0 - aT));
  for (let i = 0; i < n; i++) sq[i] = f32(f32(sq[i]! - aT) * scale);
  const bar = sq.map((v) => f32(v * v));
  const out = new Float32Array(n);
  out[0] = f32(1 - bar[0]!);
  for (let i = 1; i < n; i++) out[i] = f32(1 - f32(bar[i]! / bar[i - 1]!));
  return out;
}

export function alphasFromBetas(betas: Float32Array): Float32Array {
  return betas.map((b) => f32(1 - b));
}

/** torch.cumprod on CPU accumulates float32 in double and stores float32. */
export function cumprodF32(a: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  let acc = 1;
  for (let i = 0; i < a.length; i++) {
    acc *= a[i]!;
    out[i] = acc;
  }
  return out;
}

export const BETA_SCHEDULES = ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const;

/**
 * Betas from `trained_betas` / `beta_schedule`, rescaled to zero terminal SNR when the scheduler
 * has `rescale_betas_zero_snr` (PNDM has not: `hasRescale` false ignores the key as diffusers does).
 */
export function makeBetas(cfg: SchedulerConfig, opts: { extraSchedules?: readonly string[]; hasRescale?: boolean } = {}): Float32Array {
  const extraSchedules = opts.extraSchedules ?? [];
  const n = cfg.num('num_train_timesteps', { integer: true, min: 2 });
  const trained = cfg.optNumArray('trained_betas');
  let betas: Float32Array;
  if (trained) {
    if (trained.length !== n) {
      throw new ConfigError(SCHEDULER_CONFIG_INVALID, `${cfg.className}: trained_betas has ${trained.length} values but num_train_timesteps is ${n}`, 'trained_betas');
    }
    betas = Float32Array.from(trained);
  } else {
    const schedule = cfg.oneOf<string>('beta_schedule', [...BETA_SCHEDULES, ...extraSchedules]);
    const start = cfg.num('beta_start');
    const end = cfg.num('beta_end');
    if (schedule === 'linear') betas = torchLinspaceF32(start, end, n);
    else if (schedule === 'scaled_linear') betas = torchLinspaceF32(start ** 0.5, end ** 0.5, n).map((b) => f32(b * b));
    else if (schedule === 'sigmoid') {
      // DDPM only: sigmoid(linspace(-6, 6)) * (end - start) + start
      const x = torchLinspaceF32(-6, 6, n);
      const range = f32(end - start);
      betas = x.map((v) => f32(f32(f32(1 / (1 + Math.exp(-v))) * range) + f32(start)));
    } else betas = betasForAlphaBar(n);
  }
  if (opts.hasRescale !== false && cfg.values['rescale_betas_zero_snr'] !== undefined && cfg.bool('rescale_betas_zero_snr')) {
    betas = rescaleZeroTerminalSnr(betas);
  }
  return betas;
}

/** alphas_cumprod from betas (float32). */
export function alphasCumprod(betas: Float32Array): Float32Array {
  return cumprodF32(alphasFromBetas(betas));
}

/** `((1 - ac) / ac) ** 0.5` in float32, per training timestep (ascending with t). */
export function sigmasFromAlphasCumprod(ac: Float32Array): Float32Array {
  return ac.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

// ---------------------------------------------------------------------------------------------
// Timestep spacing (numpy float64), Table 2 of arXiv 2305.08891

export const TIMESTEP_SPACINGS = ['linspace', 'leading', 'trailing'] as const;
export type TimestepSpacing = (typeof TIMESTEP_SPACINGS)[number];

/**
 * The spacing of DDIM/DDPM/Euler: `n` descending timesteps. `roundLinspace` is false for Euler,
 * whose linspace timesteps keep their fractions.
 */
export function spacedTimesteps(
  spacing: TimestepSpacing, numTrain: number, n: number, stepsOffset: number, roundLinspace: boolean,
): Float64Array {
  if (spacing === 'linspace') {
    const t = npLinspace(0, numTrain - 1, n).reverse();
    return roundLinspace ? t.map(roundHalfEven) : t.map(f32);
  }
  if (spacing === 'leading') {
    const ratio = Math.floor(numTrain / n);
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) t[i] = (n - 1 - i) * ratio + stepsOffset;
    return t;
  }
  return npArange(numTrain, 0, -numTrain / n).map((v) => roundHalfEven(v) - 1);
}

/**
 * The spacing of the multistep solvers (DPM-Solver, UniPC): `n + 1` points, the last dropped.
 * `lastTimestep` is below `numTrain` only when DPM-Solver clips lambda.
 */
export function multistepTimesteps(
  spacing: TimestepSpacing, numTrain: number, n: number, stepsOffset: number, lastTimestep = numTrain,
): Float64Array {
  if (spacing === 'linspace') return npLinspace(0, lastTimestep - 1, n + 1).map(roundHalfEven).reverse().subarray(0, n).slice();
  if (spacing === 'leading') {
    const ratio = Math.floor(lastTimestep / (n + 1));
    const t = new Float64Array(n);
    for (let i = 0; i < n; i++) t[i] = (n - i) * ratio + stepsOffset;
    return t;
  }
  return npArange(lastTimestep, 0, -numTrain / n).map((v) => roundHalfEven(v) - 1);
}

// ---------------------------------------------------------------------------------------------
// Sigma schedules (numpy float64)

/** Karras et al. (2022) sigmas, rho = 7, from sigmaMax down to sigmaMin. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  const rho = 7;
  const ramp = npLinspace(0, 1, n);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return ramp.map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** diffusers' `_sigma_to_t`: a fractional timestep by interpolating log sigma. */
export function sigmaToT(sigma: number, logSigmas: ArrayLike<number>): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  const n = logSigmas.length;
  // last index whose log sigma <= ours (cumsum(dists >= 0).argmax), clipped to n - 2
  let count = 0;
  let lowIdx = 0;
  let best = -1;
  for (let i = 0; i < n; i++) {
    if (logSigma - logSigmas[i]! >= 0) count++;
    if (count > best) {
      best = count;
      lowIdx = i;
    }
  }
  lowIdx = Math.min(lowIdx, n - 2);
  const low = logSigmas[lowIdx]!;
  const high = logSigmas[lowIdx + 1]!;
  let w = (low - logSigma) / (low - high);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * lowIdx + w * (lowIdx + 1);
}

// ---------------------------------------------------------------------------------------------
// Step helpers

export const PREDICTION_TYPES = ['epsilon', 'v_prediction', 'sample'] as const;
export type PredictionType = (typeof PREDICTION_TYPES)[number];

/**
 * x0 and epsilon from the model output, in float32 per element as torch computes them
 * (shared by DDIM, DDPM and LCM; sa/sb are sqrt(alpha_prod_t) and sqrt(1 - alpha_prod_t)).
 */
export function predictX0Eps(
  pred: PredictionType, mo: number, s: number, sa: number, sb: number, wantEps: boolean,
): [number, number] {
  if (pred === 'epsilon') return [f32(f32(s - f32(sb * mo)) / sa), mo];
  if (pred === 'sample') return [mo, wantEps ? f32(f32(s - f32(sa * mo)) / sb) : 0];
  return [f32(f32(sa * s) - f32(sb * mo)), wantEps ? f32(f32(sa * mo) + f32(sb * s)) : 0];
}

/** alphas_cumprod with diffusers' zero-SNR patch: the last one becomes 2^-24 so sigma stays finite. */
export function sigmaAlphasCumprod(cfg: SchedulerConfig): Float32Array {
  const ac = alphasCumprod(makeBetas(cfg));
  if (cfg.bool('rescale_betas_zero_snr')) ac[ac.length - 1] = 2 ** -24;
  return ac;
}

/** float32 `sample / sqrt(sigma^2 + 1)`: the input scaling of the sigma-space (k-diffusion) schedulers. */
export function scaleBySigma(sample: Float32Array, sigma: number): Float32Array {
  const c = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(sample[i]! / c);
  return out;
}

/** init_noise_sigma of Euler-type schedulers: sigma_max, or sqrt(sigma_max^2 + 1) for leading spacing. */
export function eulerInitNoiseSigma(sigmas: Float32Array | undefined, spacing: TimestepSpacing): number {
  let max = 0;
  for (const s of sigmas ?? []) max = Math.max(max, s);
  return spacing === 'leading' ? f32(Math.sqrt(f32(f32(max * max) + 1))) : max;
}

/** alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t and lambda = log(alpha_t / sigma_t), in float32. */
export function alphaSigmaLambda(sigma: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  const s = f32(sigma * alpha);
  return { alpha, sigma: s, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(s))) };
}

/** The noise for a stochastic step: `opts.noise()` when given, else `opts.generator`. */
export function drawNoise(opts: StepOptions | undefined, n: number, who: string): Float32Array {
  if (opts?.noise) {
    const z = opts.noise();
    if (!(z instanceof Float32Array) || z.length !== n) {
      throw new ConfigError('SCHEDULER_NOISE_SHAPE', `${who}: opts.noise() returned ${z?.length ?? 'nothing'} values, expected a Float32Array of ${n}`, 'noise');
    }
    return z;
  }
  const g: Generator | undefined = opts?.generator;
  if (g) return g.randn(n);
  throw new ConfigError('SCHEDULER_NOISE_REQUIRED', `${who} is stochastic: pass opts.noise or opts.generator to step()`, 'generator');
}
