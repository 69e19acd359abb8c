/**
 * The common scheduler interface. Tensors are flat Float32Arrays: every scheduler here works
 * element by element, so the shape does not matter. A step is addressed by its index in
 * `timesteps` (not by the timestep value, which repeats for PNDM and Karras schedules).
 */
import { ConfigError, SmashError } from '../errors.js';
import type { Generator } from '../tensors/random.js';

/** diffusers' set_timesteps keyword arguments. */
export interface SetTimestepsOptions {
  /** FlowMatch with `use_dynamic_shifting`: the shift exponent (see `calculateShift`). */
  mu?: number;
  /**
   * Custom noise levels, one per step, before the scheduler's shift (diffusers' `sigmas`; the
   * Flux pipeline passes linspace(1, 1/n, n)). Only schedulers with `acceptsSigmas` take them;
   * the others throw SCHEDULER_SIGMAS_UNSUPPORTED, as diffusers' retrieve_timesteps does.
   */
  sigmas?: ArrayLike<number>;
}

export interface StepOptions {
  /** Returns the next noise array, in draw order (takes precedence over `generator`). */
  noise?: () => Float32Array;
  /** Draws noise when `noise` is not given. */
  generator?: Generator;
}

export interface Scheduler {
  /** diffusers class name, e.g. `EulerDiscreteScheduler`. */
  readonly className: string;
  /** The config in effect: the given keys over diffusers' defaults. */
  readonly config: Record<string, unknown>;
  /** What to multiply unit-variance initial noise by (valid after `setTimesteps`). */
  readonly initNoiseSigma: number;
  /** The timestep fed to the model at each step index; fractional for some schedules. */
  readonly timesteps: Float32Array;
  /** Noise levels per step plus the final one, for the schedulers that have them. */
  readonly sigmas?: Float32Array;
  /** Whether setTimesteps takes custom `sigmas` (diffusers: `sigmas` in set_timesteps' signature). */
  readonly acceptsSigmas: boolean;
  /** Sets the schedule for `numInferenceSteps` and resets all multistep state. */
  setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void;
  /** The model input at step `stepIndex`; may return `sample` itself when there is no scaling. */
  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array;
  /** The sample after step `stepIndex`, a new array. Multistep schedulers need steps in order. */
  step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, opts?: StepOptions): Float32Array;
  /**
   * diffusers' add_noise (scale_noise for flow matching): `original` noised to the level of step
   * `stepIndex`, as image-to-image starts. A new array.
   */
  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array;
  /** diffusers' set_begin_index: the first step to run is `stepIndex` (image-to-image); call after setTimesteps. */
  setBeginIndex(stepIndex: number): void;
}

/** Shared bookkeeping: schedule state and argument checks. */
export abstract class SchedulerBase implements Scheduler {
  abstract readonly className: string;
  abstract readonly config: Record<string, unknown>;
  timesteps: Float32Array = new Float32Array(0);
  sigmas?: Float32Array;
  readonly acceptsSigmas: boolean = false;
  /** Steps as asked of setTimesteps (timesteps.length differs for PNDM). */
  protected numInferenceSteps = 0;
  /** For schedulers with history: the step index expected next. */
  protected nextStep = 0;

  get initNoiseSigma(): number {
    return 1;
  }

  abstract setTimesteps(numInferenceSteps: number, opts?: SetTimestepsOptions): void;
  abstract step(modelOutput: Float32Array, stepIndex: number, sample: Float32Array, opts?: StepOptions): Float32Array;

  scaleModelInput(sample: Float32Array, stepIndex: number): Float32Array {
    this.checkIndex(stepIndex);
    return sample;
  }

  /** The first step index the loop runs (set_begin_index); multistep history starts there. */
  protected beginIndex = 0;

  setBeginIndex(stepIndex: number): void {
    this.checkIndex(stepIndex);
    this.beginIndex = stepIndex;
    this.nextStep = stepIndex;
  }

  /** add_noise as `a · original + b · noise` at step `stepIndex`: each scheduler's coefficients. */
  protected abstract noiseCoefficients(stepIndex: number): { a: number; b: number };

  addNoise(original: Float32Array, noise: Float32Array, stepIndex: number): Float32Array {
    this.checkIndex(stepIndex);
    if (original.length !== noise.length) throw new SmashError('SCHEDULER_SHAPE', `${this.className}: addNoise got ${original.length} values and ${noise.length} noise values`);
    const { a, b } = this.noiseCoefficients(stepIndex);
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(a * original[i]!) + Math.fround(b * noise[i]!));
    return out;
  }

  protected checkSteps(n: number, numTrain: number): void {
    if (!Number.isSafeInteger(n) || n < 1 || n > numTrain) {
      throw new SmashError('SCHEDULER_STEPS', `${this.className}: numInferenceSteps must be an integer in 1..${numTrain}, got ${n}`);
    }
  }

  /** For the schedulers whose set_timesteps has no `sigmas` argument. */
  protected rejectSigmas(opts: SetTimestepsOptions | undefined): void {
    if (opts?.sigmas !== undefined) {
      throw new ConfigError('SCHEDULER_SIGMAS_UNSUPPORTED', `${this.className}: setTimesteps does not take custom sigmas (FlowMatchEulerDiscreteScheduler does)`, 'sigmas');
    }
  }

  protected checkIndex(stepIndex: number): void {
    if (this.timesteps.length === 0) throw new SmashError('SCHEDULER_NOT_SET', `${this.className}: call setTimesteps() before stepping`);
    if (!Number.isSafeInteger(stepIndex) || stepIndex < 0 || stepIndex >= this.timesteps.length) {
      throw new SmashError('SCHEDULER_STEP_INDEX', `${this.className}: step index ${stepIndex} is outside 0..${this.timesteps.length - 1}`);
    }
  }

  protected checkArgs(modelOutput: Float32Array, stepIndex: number, sample: Float32Array): void {
    this.checkIndex(stepIndex);
    if (modelOutput.length !== sample.length) {
      throw new SmashError('SCHEDULER_SHAPE', `${this.className}: model output has ${modelOutput.length} values, sample ${sample.length}`);
    }
  }

  /** For schedulers whose history assumes consecutive steps. */
  protected checkOrder(stepIndex: number): void {
    if (stepIndex !== this.nextStep) {
      throw new SmashError(
        'SCHEDULER_STEP_ORDER',
        `${this.className}: steps must run in order after setTimesteps(); expected step ${this.nextStep}, got ${stepIndex}`,
      );
    }
    this.nextStep++;
  }
}
