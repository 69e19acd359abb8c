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
  /**
   * qualified op types with bfloat16 kernels: what the bf16 algorithm may run in bfloat16 (every
   * other float op stays float32 behind Casts). A provider without a bfloat16 MatMul has no
   * bfloat16 compute worth converting to; `bf16Missing` says why.
   */
  bf16: ReadonlySet<string>;
  /** why the provider cannot run a bfloat16 graph, where it cannot */
  bf16Missing?: string;
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

/**
 * Data-movement ops: ORT registers them for every tensor type (bfloat16 included) on each
 * provider, so they never force a Cast back to float32.
 */
const ANY_TYPE = ['Reshape', 'Transpose', 'Concat', 'Slice', 'Split', 'Gather', 'Unsqueeze', 'Squeeze', 'Expand', 'Identity', 'Flatten', 'Shape', 'Constant'];

/**
 * CPU (and wasm, the same kernels): measured on onnxruntime-node 1.30 (test/algorithms/bf16.test.ts
 * checks it): bfloat16 Cast, LayerNormalization and SkipLayerNormalization run; MatMul, Gemm, Add,
 * Mul, Div, Softmax, Sigmoid, Erf, Where, Resize, MultiHeadAttention and FusedMatMul fail with
 * 'Could not find an implementation', and Conv rejects bfloat16 below opset 22.
 */
const CPU_BF16 = [...ANY_TYPE, 'Cast', 'LayerNormalization', 'com.microsoft.SkipLayerNormalization'];

/**
 * CUDA, from ORT's kernel tables (cuda_execution_provider.cc, contrib_ops/cuda/cuda_contrib_kernels.cc):
 * bfloat16 for MatMul, Gemm, the four arithmetic ops, Softmax, Sigmoid, Tanh, Relu, ReduceSum,
 * LayerNormalization and the transformer contrib ops. Not Conv, Resize, Where, Pow, Sqrt, Erf or
 * ReduceMean (a UNet's convolutions and GroupNorm decomposition stay float32), nor GroupNorm.
 */
const CUDA_BF16 = [
  ...ANY_TYPE,
  'Cast', 'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Softmax', 'Sigmoid', 'Tanh', 'Relu', 'ReduceSum', 'LayerNormalization', 'SimplifiedLayerNormalization',
  ...ms('MultiHeadAttention', 'Attention', 'Gelu', 'FastGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization', 'FusedMatMul', 'RotaryEmbedding', 'MatMulNBits'),
];

const NO_MATMUL = (provider: string) => `onnxruntime's ${provider} provider has no bfloat16 MatMul, Gemm, Add, Mul or Softmax kernels (1.30: 'Could not find an implementation for MatMul(13)')`;

export const PROFILES: Readonly<Record<ProfileName, ProviderProfile>> = {
  cpu: { name: 'cpu', ops: new Set(CPU), bf16: new Set(CPU_BF16), bf16Missing: NO_MATMUL('cpu') },
  // the WebAssembly build runs the CPU kernels, less the x86-only quantized GEMMs' fast paths (same ops)
  wasm: { name: 'wasm', ops: new Set(CPU), bf16: new Set(CPU_BF16), bf16Missing: NO_MATMUL('wasm (CPU kernels)') },
  cuda: {
    name: 'cuda',
    ops: new Set([
      ...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
        'MatMulNBits', 'FusedMatMul', 'RotaryEmbedding', 'GroupNorm', 'NhwcConv', 'BiasSplitGelu', 'BiasAdd'),
      'SimplifiedLayerNormalization',
    ]),
    bf16: new Set(CUDA_BF16),
  },
  // no DynamicQuantizeMatMul, and MultiHeadAttention without packed QKV. No profile claims packed
  // QKV ([B, S, N, 3, H]): the CPU kernel refuses it ('not implemented for CPU', bench/packed-qkv.py),
  // and CUDA's runs it only through its fused kernels ('not implemented for current GPU' otherwise:
  // float32 at short sequences), so no fusion emits it
  webgpu: {
    name: 'webgpu',
    ops: new Set([
      ...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
        'MatMulNBits', 'RotaryEmbedding', 'BiasSplitGelu', 'BiasAdd'),
      'SimplifiedLayerNormalization',
    ]),
    // its kernels declare float and float16 only (webgpu_supported_types.h: SupportedFloats)
    bf16: new Set(),
    bf16Missing: "onnxruntime's webgpu provider has kernels for float32 and float16 only (WGSL has no bfloat16)",
  },
  dml: {
    name: 'dml',
    ops: new Set([...ms('MultiHeadAttention', 'Gelu', 'FastGelu', 'BiasGelu', 'QuickGelu', 'SkipLayerNormalization', 'MatMulNBits', 'FusedMatMul', 'BiasSplitGelu', 'BiasAdd', 'GroupNorm', 'NhwcConv')]),
    bf16: new Set(),
    bf16Missing: "onnxruntime's dml provider's bfloat16 kernels were not checked, so bf16 is not offered there",
  },
};

export function profileRuns(profile: ProfileName, qualifiedOp: string): boolean {
  return PROFILES[profile].ops.has(qualifiedOp);
}

/** Whether the provider has a bfloat16 kernel for a qualified op type. */
export function profileRunsBf16(profile: ProfileName, qualifiedOp: string): boolean {
  return PROFILES[profile].bf16.has(qualifiedOp);
}
