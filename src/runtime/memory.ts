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
