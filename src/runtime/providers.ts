import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Execution providers we know. onnxruntime-node 1.30 bundles `cpu` and, on Linux x64, `webgpu`
 * (needs a GPU with Vulkan drivers); `cuda` and `dml` need binaries the user installs.
 */
export type ProviderName = 'cpu' | 'webgpu' | 'cuda' | 'dml';

export const PROVIDERS: readonly ProviderName[] = ['cpu', 'webgpu', 'cuda', 'dml'];

export function isProvider(s: string): s is ProviderName {
  return (PROVIDERS as readonly string[]).includes(s);
}

/**
 * Whether a provider can be tried here, and if not why: CUDA needs onnxruntime's CUDA provider
 * library beside the binding (onnxruntime-node's install script fetches it; package.json's
 * allowScripts denies that script), DirectML exists on Windows only. Checking first avoids onnxruntime's native error log.
 */
export function providerUnavailable(name: ProviderName, bindingDir: string): string | undefined {
  if (name === 'dml' && process.platform !== 'win32') return 'DirectML runs on Windows only';
  if (name === 'cuda') {
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    if (!existsSync(join(bindingDir, lib))) return `the CUDA provider library ${lib} is not installed in ${bindingDir}`;
  }
  return undefined;
}
