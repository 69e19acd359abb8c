/**
 * Resident memory of this process: the current RSS and its peak, and the peak within a span of
 * work (a pipeline stage). onnxruntime allocates outside V8's heap, so RSS is what counts.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** A field of /proc/self/status in bytes (Linux), or undefined elsewhere. */
function procStatus(field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function rssBytes(): number {
  return procStatus('VmRSS') ?? process.memoryUsage.rss();
}

/**
 * The highest VmHWM seen just before a reset (`resetPeakRss`): resets are how spans get exact
 * peaks, and they must not lower the process's peak, which the benchmarks report.
 */
let carriedPeak = 0;
/** Trackers measuring now: a reset inside one of them carries the peak it erased into it. */
const active = new Set<PeakTracker>();

/** The process's peak RSS so far (VmHWM; getrusage's maxrss where /proc is absent), across resets. */
export function peakRssBytes(): number {
  return Math.max(carriedPeak, procStatus('VmHWM') ?? process.resourceUsage().maxRSS * 1024);
}

/**
 * Resets the kernel's peak RSS of this process (VmHWM) to its current RSS: writing 5 to
 * /proc/self/clear_refs (Linux >= 4.0). false where that fails (no /proc, not permitted); the
 * peak it erases is kept for `peakRssBytes` and for the spans being tracked.
 */
export function resetPeakRss(): boolean {
  const before = procStatus('VmHWM');
  if (before === undefined) return false;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    return false;
  }
  carriedPeak = Math.max(carriedPeak, before);
  for (const t of active) t.carry(before);
  return true;
}

/**
 * The peak RSS of a span (a pipeline stage). Exact where the kernel's peak can be reset (Linux):
 * VmHWM is reset at the start and read at the end. Elsewhere, the peak when the span raises the
 * process's peak, else the highest of RSS samples taken every `intervalMs` (onnxruntime runs off
 * the main thread, so the timer fires during runs) and at the ends, which can miss a short peak.
 */
export class PeakTracker {
  /** whether the span's peak is VmHWM since its start (a reset worked) rather than sampled */
  readonly exact: boolean;
  private readonly startPeak: number;
  private max = rssBytes();
  private readonly timer: NodeJS.Timeout | undefined;
  private result: number | undefined;

  constructor(intervalMs = 20) {
    this.exact = resetPeakRss();
    this.startPeak = peakRssBytes();
    if (this.exact) active.add(this);
    else {
      this.timer = setInterval(() => this.sample(), intervalMs);
      this.timer.unref();
    }
  }

  private sample(): void {
    const r = rssBytes();
    if (r > this.max) this.max = r;
  }

  /** a peak within the span that a reset (a nested span's start) erased from VmHWM */
  carry(peak: number): void {
    if (peak > this.max) this.max = peak;
  }

  /** Stops measuring; the span's peak in bytes (the same on every call). */
  stop(): number {
    if (this.result !== undefined) return this.result;
    clearInterval(this.timer);
    active.delete(this);
    this.sample();
    // exact: VmHWM since the reset at the start (a reset needs /proc, so it is there)
    if (this.exact) this.result = Math.max(this.max, procStatus('VmHWM')!);
    else {
      const peak = peakRssBytes();
      this.result = peak > this.startPeak ? peak : this.max;
    }
    return this.result;
  }
}

/**
 * glibc malloc settings under which the memory onnxruntime frees goes back to the system, and
 * activations sit on huge pages. By default glibc raises its mmap threshold each time a block
 * above it is freed (up to 32 MiB), so after a few runs activations of up to 32 MiB come from the
 * heap, and freed heap blocks stay resident: a full-size SD 1.5 generation kept 0.7 GiB after the
 * UNet's steps and peaked in the VAE decode on top of it (README, "Memory"). A fixed threshold
 * of 2 MiB stops the raising, so larger activations are mappings of their own, given back when
 * freed; malloc asks for transparent huge pages for them (`glibc.malloc.hugetlb=1`, glibc 2.35+,
 * older ones ignore it), which makes their page faults 512 times fewer: full-size SD 1.5 at
 * 512×512 then peaked at weights + 0.80 GiB (glibc's defaults: + 0.97 to 1.49) in half the CPU
 * time. At the benchmark's sizes (256×256, activations of 0.1–10 MiB) there is nothing to gain:
 * a fresh mapping is zeroed on every run where the heap reused its blocks, and time per image
 * moved within ±8% of glibc's defaults from run to run (128 KiB: 1.3–1.5× slower;
 * bench/allocator-speed.mjs). glibc reads them at process start, so only a new process gets them:
 * the `smash` CLI relaunches itself with them for large models, under `--low-memory` and with
 * SMASH_MALLOC_ENV=1 (src/cli/relaunch.ts); a program embedding the library sets them in its own
 * environment.
 */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '2097152', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' };

/**
 * The variables to add to `env` for a process that runs sessions (`ALLOCATOR_ENV`, with other
 * tunables already in GLIBC_TUNABLES kept): undefined off Linux, when `env` sets glibc's malloc
 * already (MALLOC_MMAP_THRESHOLD_, or malloc tunables in GLIBC_TUNABLES: the user's choice wins)
 * or when SMASH_MALLOC_ENV=0 turns it off. Whether to apply them at all is the caller's choice.
 */
export function allocatorEnv(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Record<string, string> | undefined {
  if (platform !== 'linux' || env.SMASH_MALLOC_ENV === '0') return undefined;
  const tunables = env.GLIBC_TUNABLES ?? '';
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || /glibc\.malloc\./.test(tunables)) return undefined;
  return { ...ALLOCATOR_ENV, GLIBC_TUNABLES: tunables ? `${tunables}:${ALLOCATOR_ENV.GLIBC_TUNABLES}` : ALLOCATOR_ENV.GLIBC_TUNABLES! };
}
