/**
 * The generation signature: cached tensors are only valid while batch size, resolution and step
 * count stay the same. The stateful denoiser asks `changed()` before every generation and resets
 * its policy and kept tensors when it says so (it resets at every generation start anyway; this
 * catches a change within a reused denoiser too).
 */
export interface GenerationSignature {
  batch: number;
  height: number;
  width: number;
  /** number of model calls (`timesteps.length`) */
  steps: number;
}

export class GenerationTracker {
  #last: GenerationSignature | undefined;

  /** True on the first call and whenever any field differs from the previous call's. */
  changed(sig: GenerationSignature): boolean {
    const last = this.#last;
    this.#last = { batch: sig.batch, height: sig.height, width: sig.width, steps: sig.steps };
    return (
      last === undefined ||
      last.batch !== sig.batch ||
      last.height !== sig.height ||
      last.width !== sig.width ||
      last.steps !== sig.steps
    );
  }

  /** Forget the last signature, so the next `changed()` is true. */
  reset(): void {
    this.#last = undefined;
  }
}
