/**
 * Execution providers we know. onnxruntime-node 1.30 bundles `cpu` and, on Linux x64, `webgpu`
 * (needs a GPU with Vulkan drivers); `cuda` and `dml` need binaries the user installs.
 */
export type ProviderName = 'cpu' | 'webgpu' | 'cuda' | 'dml';

export const PROVIDERS: readonly ProviderName[] = ['cpu', 'webgpu', 'cuda', 'dml'];

export function isProvider(s: string): s is ProviderName {
  return (PROVIDERS as readonly string[]).includes(s);
}
