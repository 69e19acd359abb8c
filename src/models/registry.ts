import type { Model } from '../ir/graph.js';
import type { ModelConfig } from './config.js';
import type { Weights } from './weights.js';

/**
 * A graph builder for one architecture: config + weights -> one or more ONNX models. Most
 * architectures give one graph (key `model`); AutoencoderKL gives `encoder` and `decoder`.
 */
export type ArchitectureBuilder = (config: ModelConfig, weights: Weights) => Record<string, Model>;

const builders = new Map<string, ArchitectureBuilder>();

export function registerArchitecture(className: string, build: ArchitectureBuilder): void {
  builders.set(className, build);
}

export function architectureFor(className: string): ArchitectureBuilder | undefined {
  return builders.get(className);
}

export function supportedArchitectures(): string[] {
  return [...builders.keys()].sort();
}
