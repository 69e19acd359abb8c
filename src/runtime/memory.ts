/**
 * Resident memory of this process: the current RSS and its peak, and the peak within a span of
 * work (a pipeline stage). onnxruntime allocates outside V8's heap, so RSS is what counts.
 */
import { readFileSync } from 'node:fs';

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

/** The process's peak RSS so far (VmHWM; getrusage's maxrss where /proc is absent). */
export function peakRssBytes(): number {
  return procStatus('VmHWM') ?? process.resourceUsage().maxRSS * 1024;
}

/**
 * The peak RSS of a span: exact when the span raises the process's peak (VmHWM), else the highest
 * of RSS samples taken every `intervalMs` (onnxruntime runs off the main thread, so the timer
 * fires during runs) and at the ends.
 */
export class PeakTracker {
  private readonly startPeak = peakRssBytes();
  private max = rssBytes();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 20) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    const r = rssBytes();
    if (r > this.max) this.max = r;
  }

  /** Stops sampling; the span's peak in bytes. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    const peak = peakRssBytes();
    return peak > this.startPeak ? peak : this.max;
  }
}

/**
 * glibc malloc settings under which the memory onnxruntime frees goes back to the system, and
 * activations sit on huge pages. By default glibc raises its mmap threshold each time a block
 * above it is freed (up to 32 MiB), so after a few runs activations of up to 32 MiB come from the
 * heap, and freed heap blocks stay resident: a full-size SD 1.5 generation kept 0.7 GiB after the
 * UNet's steps and peaked in the VAE decode on top of it (README, "Memory"). A fixed threshold
 * stops the raising; every activation is then a fresh mapping, whose 4 KiB page faults cost more
 * than the heap saved, unless malloc asks for transparent huge pages (`glibc.malloc.hugetlb=1`,
 * glibc 2.35+, older ones ignore it): the VAE decoder then ran in a third of glibc's default CPU
 * time. glibc reads these at process start, so only a new process gets them: the `smash` CLI
 * relaunches itself with them (src/cli/relaunch.ts); a program embedding the library sets them.
 */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' };

/**
 * The variables to add to `env` for a process that runs sessions (`ALLOCATOR_ENV`, with other
 * tunables already in GLIBC_TUNABLES kept): undefined off Linux, when `env` sets glibc's malloc
 * already (MALLOC_MMAP_THRESHOLD_, or malloc tunables in GLIBC_TUNABLES: the user's choice wins)
 * or when SMASH_MALLOC_ENV=0 turns it off.
 */
export function allocatorEnv(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Record<string, string> | undefined {
  if (platform !== 'linux' || env.SMASH_MALLOC_ENV === '0') return undefined;
  const tunables = env.GLIBC_TUNABLES ?? '';
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || /glibc\.malloc\./.test(tunables)) return undefined;
  return { ...ALLOCATOR_ENV, GLIBC_TUNABLES: tunables ? `${tunables}:${ALLOCATOR_ENV.GLIBC_TUNABLES}` : ALLOCATOR_ENV.GLIBC_TUNABLES! };
}
