/**
 * NaN and infinity checks between pipeline stages. A non-finite value anywhere ends as a black
 * (or noise) image that looks like a result, so every stage's output is checked and the first
 * stage where one appears is named: a float16 VAE overflowing, an extreme guidance scale and
 * broken weights each show up at a different stage.
 */
import { ConfigError, RuntimeFailure } from '../errors.js';

/** Index of the first NaN or ±Infinity in `data`, or -1. */
export function firstNonFinite(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v - v !== 0) return i; // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
  }
  return -1;
}

function describe(data: ArrayLike<number>, first: number): string {
  let nan = 0;
  let inf = 0;
  for (let i = first; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
  }
  const parts = [nan ? `${nan} NaN` : '', inf ? `${inf} infinite` : ''].filter(Boolean).join(' and ');
  return `${parts} of ${data.length} values (first at index ${first})`;
}

/** Throws NON_FINITE (a RuntimeFailure naming `stage`) when a stage's output holds NaN or ±Infinity. */
export function checkFinite(stage: string, data: ArrayLike<number>): void {
  const i = firstNonFinite(data);
  if (i < 0) return;
  throw new RuntimeFailure(
    'NON_FINITE',
    `${stage} produced ${describe(data, i)}; nothing was saved (typical causes: a float16 model overflowing, an extreme guidance scale, broken weights)`,
  );
}

/** Throws NON_FINITE (a ConfigError naming the option) when a caller's tensor holds NaN or ±Infinity. */
export function checkFiniteInput(key: string, data: ArrayLike<number>): void {
  const i = firstNonFinite(data);
  if (i >= 0) throw new ConfigError('NON_FINITE', `${key}: holds ${describe(data, i)}`, key);
}
