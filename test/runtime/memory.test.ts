import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { relaunchWithAllocatorEnv } from '../../src/cli/relaunch.js';
import { ALLOCATOR_ENV, allocatorEnv } from '../../src/runtime/memory.js';

const tmp = mkdtempSync(join(tmpdir(), 'smash-memory-env-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('allocator settings', () => {
  test('Linux gets a fixed mmap threshold; the user\'s own malloc settings, SMASH_MALLOC_ENV=0 and other systems get none', () => {
    assert.deepEqual(allocatorEnv({}, 'linux'), { MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    assert.deepEqual(allocatorEnv({}, 'linux'), { ...ALLOCATOR_ENV });
    assert.equal(allocatorEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }, 'linux'), undefined);
    assert.equal(allocatorEnv({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' }, 'linux'), undefined);
    // other tunables are kept
    assert.deepEqual(allocatorEnv({ GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }, 'linux'), {
      MALLOC_MMAP_THRESHOLD_: '131072', GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F:glibc.malloc.hugetlb=1',
    });
    assert.equal(allocatorEnv({ SMASH_MALLOC_ENV: '0' }, 'linux'), undefined);
    assert.equal(allocatorEnv({}, 'darwin'), undefined);
    assert.equal(allocatorEnv({}, 'win32'), undefined);
  });

  test('the CLI relaunch runs session commands under --low-memory or SMASH_MALLOC_ENV=1 again with the settings, passes the exit code, and leaves the rest alone', async (t) => {
    if (process.platform !== 'linux') return t.skip('the settings are glibc\'s (Linux only)');
    const script = join(tmp, 'child.mjs');
    const seen = join(tmp, 'seen.json');
    writeFileSync(script, `import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(seen)}, JSON.stringify({ threshold: process.env.MALLOC_MMAP_THRESHOLD_ ?? null, tunables: process.env.GLIBC_TUNABLES ?? null, args: process.argv.slice(2) }));
process.exitCode = 7;
`);
    const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: undefined, GLIBC_TUNABLES: undefined, SMASH_MALLOC_ENV: undefined };
    const code = await relaunchWithAllocatorEnv(script, ['generate', 'model', '--low-memory'], env);
    assert.equal(code, 7);
    assert.deepEqual(JSON.parse(readFileSync(seen, 'utf8')), { threshold: '131072', tunables: 'glibc.malloc.hugetlb=1', args: ['generate', 'model', '--low-memory'] });
    assert.equal(await relaunchWithAllocatorEnv(script, ['optimize', 'model'], { ...env, SMASH_MALLOC_ENV: '1' }), 7);
    // by default (speed first) no relaunch; nor for commands without sessions
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', 'model', '--steps', '2'], env), undefined);
    assert.equal(relaunchWithAllocatorEnv(script, ['inspect', 'model', '--low-memory'], env), undefined);
    // already relaunched (or set by the user): no second relaunch
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', 'model', '--low-memory'], { ...env, MALLOC_MMAP_THRESHOLD_: '131072' }), undefined);
  });

  test('under the settings, a generation returns its activations: its peak and RSS after it stay near RSS before it', (t) => {
    if (process.platform !== 'linux') return t.skip('the settings are glibc\'s (Linux only)');
    // its own process: glibc reads the settings at start. sd15-tiny at 128×128 frees blocks of
    // 1-16 MiB; under glibc's defaults its second generation peaked 24-47 MiB over RSS before it
    // and kept up to 27 MiB, under the mmap threshold 1-15 MiB and at most 5 MiB (5 runs each;
    // with huge pages too, 13 MiB and 1 MiB)
    const code = `
import { loadPipeline } from './src/pipelines/loader.js';
import { rssBytes, peakRssBytes } from './src/runtime/memory.js';
const pipe = await loadPipeline('test/fixtures/pipelines/sd15-tiny', { cacheDir: ${JSON.stringify(join(tmp, 'cache'))} });
await pipe.generate({ prompt: 'a red fox', steps: 1, width: 32, height: 32, seed: 3 });
const before = rssBytes();
await pipe.generate({ prompt: 'a red fox', steps: 2, width: 128, height: 128, seed: 3 });
console.log(JSON.stringify({ peak: peakRssBytes() - before, kept: rssBytes() - before }));
await pipe.release();
`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8', timeout: 120_000, env: { ...process.env, SMASH_MALLOC_ENV: undefined, GLIBC_TUNABLES: undefined, ...ALLOCATOR_ENV },
    });
    assert.equal(r.status, 0, r.stderr);
    const { peak, kept } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { peak: number; kept: number };
    const MiB = 2 ** 20;
    assert.ok(peak < 20 * MiB, `peak ${(peak / MiB).toFixed(1)} MiB over RSS before the generation`);
    assert.ok(kept < 10 * MiB, `RSS after the generation ${(kept / MiB).toFixed(1)} MiB over RSS before it`);
  });
});
