/**
 * Execution-provider profiles: the operators outside the ONNX standard that each provider has
 * kernels for (from ONNX Runtime's contrib-operator kernel tables, 1.2x). A graph pass that emits
 * such an operator checks the profile first, so a smashed graph never asks a provider for an op it
 * cannot run (which would silently fall back to CPU, or fail in the browser).
 */
import type { ProviderName } from './providers.js';

/** Where a graph will run: the Node providers, and onnxruntime-web's WebAssembly backend. */
export type ProfileName = ProviderName | 'wasm';

export interface ProviderProfile {
  name: ProfileName;
  /**
   * qualified op types (`com.microsoft.MultiHeadAttention`; ORT's own ops in the ONNX domain by
   * bare name), and kernel features a fusion relies on beyond the op's ONNX definition, as
   * `Op[feature]`
   */
  ops: ReadonlySet<string>;
}

const ms = (...ops: string[]) => ops.map((o) => `com.microsoft.${o}`);

/**
 * LayerNormalization whose scale and bias are per-sample [B, 1, D] tensors broadcast over x
 * (adaLN modulation folded into the norm): ORT's CPU kernel broadcasts them (layer_norm_helper.h,
 * checked on 1.30 by test/algorithms/fusions.test.ts); not claimed for the other providers, whose
 * kernels were not checked.
 */
export const LAYER_NORM_BROADCAST_AFFINE = 'LayerNormalization[broadcast-affine]';

const CPU = [
  ...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
    'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'MatMulNBits', 'FusedMatMul', 'RotaryEmbedding'),
  'SimplifiedLayerNormalization',
  LAYER_NORM_BROADCAST_AFFINE,
];

export const PROFILES: Readonly<Record<ProfileName, ProviderProfile>> = {
  cpu: { name: 'cpu', ops: new Set(CPU) },
  // the WebAssembly build runs the CPU kernels, less the x86-only quantized GEMMs' fast paths (same ops)
  wasm: { name: 'wasm', ops: new Set(CPU) },
  cuda: {
    name: 'cuda',
    ops: new Set([
      ...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
        'MatMulNBits', 'FusedMatMul', 'RotaryEmbedding', 'GroupNorm', 'NhwcConv', 'BiasSplitGelu', 'BiasAdd'),
      'SimplifiedLayerNormalization',
    ]),
  },
  // no DynamicQuantizeMatMul, and MultiHeadAttention without packed QKV
  webgpu: {
    name: 'webgpu',
    ops: new Set([
      ...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
        'MatMulNBits', 'RotaryEmbedding', 'BiasSplitGelu', 'BiasAdd'),
      'SimplifiedLayerNormalization',
    ]),
  },
  dml: { name: 'dml', ops: new Set([...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'MatMulNBits', 'FusedMatMul', 'BiasSplitGelu', 'BiasAdd', 'GroupNorm', 'NhwcConv')]) },
};

export function profileRuns(profile: ProfileName, qualifiedOp: string): boolean {
  return PROFILES[profile].ops.has(qualifiedOp);
}
