/**
 * The relative L1 change both adaptive cachers measure:
 *   mean|current − reference| / mean|reference|
 * as diffusers' first_block_cache (`_should_compute_remaining_blocks`) and TeaCache4FLUX
 * (`(modulated_inp - previous).abs().mean() / previous.abs().mean()`) compute it. Sums are
 * accumulated in float64. A zero reference gives Infinity (or NaN when both are zero), as the
 * torch division does; the policies then behave as their references do on those values.
 */
import { CompatibilityError } from '../../../errors.js';

export function relativeL1(current: Float32Array, reference: Float32Array, what = 'tensor'): number {
  if (current.length !== reference.length) {
    throw new CompatibilityError(
      'CACHE_SHAPE',
      `relative L1 of ${what}: ${current.length} elements against ${reference.length} kept — the shape changed without reset()`,
    );
  }
  let diff = 0;
  let ref = 0;
  for (let i = 0; i < current.length; i++) {
    const b = reference[i]!;
    diff += Math.abs(current[i]! - b);
    ref += Math.abs(b);
  }
  const n = current.length;
  return diff / n / (ref / n);
}
