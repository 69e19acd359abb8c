// A node:test reporter for scripts/run-tests.mjs: one JSON line per test file with the file's wall
// time (node reports each file as a test named by its path, from its process's start to its end),
// so the runner can name the slowest files. Node 20's TAP reporter does not say which file a test
// came from, nor how long a file took.
export default async function* fileTimes(source) {
  for await (const e of source) {
    if (e.type === 'test:complete' && e.data.nesting === 0 && e.data.file && e.data.name === e.data.file) {
      yield `${JSON.stringify({ file: e.data.file, ms: e.data.details.duration_ms, passed: e.data.details.passed })}\n`;
    }
  }
}
