/** Scheduler registry: build a scheduler from a diffusers `scheduler_config.json`. */
import { readJsonObject } from '../json.js';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, ModelFormatError } from '../errors.js';
import { SCHEDULER_UNSUPPORTED, parseConfigJson } from './common.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver-multistep.js';
import { EulerAncestralDiscreteScheduler } from './euler-ancestral.js';
import { EulerDiscreteScheduler } from './euler-discrete.js';
import { FlowMatchEulerDiscreteScheduler } from './flow-match-euler.js';
import { LCMScheduler } from './lcm.js';
import { PNDMScheduler } from './pndm.js';
import type { Scheduler } from './scheduler.js';
import { UniPCMultistepScheduler } from './unipc.js';

export type { Scheduler, SetTimestepsOptions, StepOptions } from './scheduler.js';
export { SchedulerBase } from './scheduler.js';
export { parseConfigJson } from './common.js';
export { calculateShift } from './flow-match-euler.js';
export {
  DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
  FlowMatchEulerDiscreteScheduler, LCMScheduler, PNDMScheduler, UniPCMultistepScheduler,
};

const REGISTRY: Record<string, new (config: object) => Scheduler> = {
  DDIMScheduler,
  PNDMScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler,
  LCMScheduler,
  UniPCMultistepScheduler,
  DDPMScheduler,
  FlowMatchEulerDiscreteScheduler,
};

/** The diffusers class names we implement. */
export const SUPPORTED_SCHEDULERS: readonly string[] = Object.freeze(Object.keys(REGISTRY));

/** A scheduler from a config object; `className` overrides the config's `_class_name`. */
export function createScheduler(config: object, className?: string): Scheduler {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError('SCHEDULER_CONFIG_INVALID', 'the scheduler config must be a JSON object');
  }
  const name = className ?? (config as Record<string, unknown>)['_class_name'];
  if (typeof name !== 'string') {
    throw new ConfigError('SCHEDULER_CLASS_MISSING', `the scheduler config has no _class_name; supported: ${SUPPORTED_SCHEDULERS.join(', ')}`, '_class_name');
  }
  const Ctor = Object.hasOwn(REGISTRY, name) ? REGISTRY[name] : undefined;
  if (!Ctor) {
    throw new ConfigError(SCHEDULER_UNSUPPORTED, `_class_name = "${name}" is not a supported scheduler; supported: ${SUPPORTED_SCHEDULERS.join(', ')}`, '_class_name');
  }
  return new Ctor(config);
}

/**
 * Reads a scheduler config and builds the scheduler. `path` is a pipeline folder (reads
 * `scheduler/scheduler_config.json`), a scheduler folder (`scheduler_config.json`) or a JSON file.
 */
export function loadScheduler(path: string, className?: string): Scheduler {
  let file = path;
  try {
    if (statSync(path).isDirectory()) {
      const nested = join(path, 'scheduler', 'scheduler_config.json');
      file = exists(nested) ? nested : join(path, 'scheduler_config.json');
    }
  } catch (e) {
    throw new ModelFormatError('FILE_MISSING', `cannot read scheduler config: ${(e as Error).message}`, { file: path, cause: e });
  }
  const config = readJsonObject(file, 'scheduler config', 'CONFIG_JSON', parseConfigJson);
  try {
    return createScheduler(config, className);
  } catch (e) {
    // name the file for config errors too
    if (e instanceof ConfigError) throw new ConfigError(e.code, `${e.message} (in ${file})`, e.key);
    throw e;
  }
}

function exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
