import cliProgress from 'cli-progress';

export interface ProgressBars {
  update(task: string, done: number, total: number, unit?: string): void;
  stop(): void;
}

/**
 * One progress bar per named task (component, or denoising), on stderr. Only on a terminal:
 * redirected to a file or a pipe, bars (and the blank line their stop writes) are noise.
 */
export function progressBars(stream: NodeJS.WriteStream = process.stderr): ProgressBars {
  if (!stream.isTTY) return { update() {}, stop() {} };
  const multi = new cliProgress.MultiBar(
    { format: ' {task} |{bar}| {value}/{total} {unit}', hideCursor: true, clearOnComplete: false, stream },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let stopped = false;
  return {
    update(task: string, done: number, total: number, unit = '') {
      let bar = bars.get(task);
      if (!bar) bars.set(task, (bar = multi.create(total, 0, { task: task.padEnd(16), unit })));
      bar.setTotal(total);
      bar.update(done, { task: task.padEnd(16), unit });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}
