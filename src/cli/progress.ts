import cliProgress from 'cli-progress';

/** One progress bar per named task (component, or denoising), on stderr; silent when not a TTY. */
export function progressBars() {
  const multi = new cliProgress.MultiBar(
    { format: ' {task} |{bar}| {value}/{total} {unit}', hideCursor: true, clearOnComplete: false, stream: process.stderr, noTTYOutput: false },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    update(task: string, done: number, total: number, unit = '') {
      let bar = bars.get(task);
      if (!bar) bars.set(task, (bar = multi.create(total, 0, { task: task.padEnd(16), unit })));
      bar.setTotal(total);
      bar.update(done, { task: task.padEnd(16), unit });
    },
    stop() {
      multi.stop();
    },
  };
}
