// Shared by the scheduler tests: fixture reading, the stand-in model and the comparison.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/tensors/safetensors.js';
import { toFloat32 } from '../../src/core/float.js';
import { createScheduler, parseConfigJson, type Scheduler } from '../../src/schedulers/index.js';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/schedulers/', import.meta.url));
/** Trajectories for the option sets beyond the copied fixtures, made by scripts/fixtures/scheduler_trajectories.py. */
export const OPTIONS_DIR = join(FIXTURE_DIR, 'options');

export function fixtureNames(dir = FIXTURE_DIR): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.safetensors')).map((n) => n.replace(/\.safetensors$/, '')).sort();
}

export interface Fixture {
  name: string;
  className: string;
  config: Record<string, unknown>;
  steps: number;
  mu?: number;
  has(key: string): boolean;
  get(key: string): Float32Array;
}

export function openFixture(name: string, dir = FIXTURE_DIR): Fixture {
  const f = SafetensorsFile.open(join(dir, `${name}.safetensors`));
  const md = f.metadata;
  const mu = md['mu'] && md['mu'] !== 'None' ? Number(md['mu']) : undefined;
  return {
    name,
    className: md['class']!,
    config: parseConfigJson(md['config']!) as Record<string, unknown>,
    steps: Number(md['num_inference_steps']),
    mu,
    has: (k) => f.has(k),
    get: (k) => toFloat32(f.tensor(k)),
  };
}

/** model_output = 0.3 x + 0.2 sin(3 x + t / 250) - 0.05 i, in float32 like the torch reference. */
export function standInModel(x: Float32Array, t: number, i: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(x.length);
  const tt = f(t / 250);
  const c3 = f(0.05 * i);
  for (let k = 0; k < x.length; k++) {
    const v = x[k]!;
    const s = f(Math.sin(f(f(3 * v) + tt)));
    out[k] = f(f(f(f(0.3) * v) + f(f(0.2) * s)) - c3);
  }
  return out;
}

/** ‖out − ref‖ / ‖ref‖ (absolute when ref is all zeros). */
export function relL2(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export interface TrajectoryReport {
  scheduler: Scheduler;
  /** label -> relative L2 error, in order of comparison */
  errors: [string, number][];
}

/** Runs the fixture's trajectory free-running (our own samples fed forward) and records every error. */
export function runTrajectory(fx: Fixture): TrajectoryReport {
  const sch = createScheduler(fx.config);
  sch.setTimesteps(fx.steps, fx.mu === undefined ? {} : { mu: fx.mu });
  const errors: [string, number][] = [];
  errors.push(['timesteps', relL2(sch.timesteps, fx.get('timesteps'))]);
  if (fx.has('sigmas')) errors.push(['sigmas', sch.sigmas ? relL2(sch.sigmas, fx.get('sigmas')) : Infinity]);
  let noiseIdx = 0;
  const noise = () => fx.get(`noise.${noiseIdx++}`);
  let x = fx.get('x0');
  for (let i = 0; i < sch.timesteps.length; i++) {
    const xin = sch.scaleModelInput(x, i);
    if (fx.has(`model_input.${i}`)) errors.push([`model_input.${i}`, relL2(xin, fx.get(`model_input.${i}`))]);
    const mo = standInModel(xin, sch.timesteps[i]!, i);
    x = sch.step(mo, i, x, { noise });
    errors.push([`x.${i}`, relL2(x, fx.get(`x.${i}`))]);
  }
  errors.push(['noise draws', fx.has(`noise.${noiseIdx}`) ? Infinity : 0]);
  return { scheduler: sch, errors };
}
