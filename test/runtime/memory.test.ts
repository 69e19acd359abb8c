import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LARGE_MODEL_BYTES, modelFolderBytes, relaunchWithAllocatorEnv } from '../../src/cli/relaunch.js';
import { ALLOCATOR_ENV, allocatorEnv } from '../../src/runtime/memory.js';

const tmp = mkdtempSync(join(tmpdir(), 'smash-memory-env-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('allocator settings', () => {
  test('Linux gets a fixed mmap threshold; the user\'s own malloc settings, SMASH_MALLOC_ENV=0 and other systems get none', () => {
    assert.deepEqual(allocatorEnv({}, 'linux'), { MALLOC_MMAP_THRESHOLD_: '2097152', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' });
    assert.deepEqual(allocatorEnv({}, 'linux'), { ...ALLOCATOR_ENV });
    assert.equal(allocatorEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }, 'linux'), undefined);
    assert.equal(allocatorEnv({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' }, 'linux'), undefined);
    // other tunables are kept
    assert.deepEqual(allocatorEnv({ GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }, 'linux'), {
      MALLOC_MMAP_THRESHOLD_: '2097152', GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F:glibc.malloc.hugetlb=1',
    });
    assert.equal(allocatorEnv({ SMASH_MALLOC_ENV: '0' }, 'linux'), undefined);
    assert.equal(allocatorEnv({}, 'darwin'), undefined);
    assert.equal(allocatorEnv({}, 'win32'), undefined);
  });

  test('the CLI relaunch runs session commands on a large model, under --low-memory or SMASH_MALLOC_ENV=1 again with the settings, passes the exit code, and leaves the rest alone', async (t) => {
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
    assert.deepEqual(JSON.parse(readFileSync(seen, 'utf8')), { threshold: '2097152', tunables: 'glibc.malloc.hugetlb=1', args: ['generate', 'model', '--low-memory'] });
    assert.equal(await relaunchWithAllocatorEnv(script, ['optimize', 'model'], { ...env, SMASH_MALLOC_ENV: '1' }), 7);
    // a model folder of LARGE_MODEL_BYTES (a sparse file: no disk used) gets them by default, a smaller one not
    const large = join(tmp, 'large');
    const small = join(tmp, 'small');
    for (const [dir, bytes] of [[large, LARGE_MODEL_BYTES], [small, LARGE_MODEL_BYTES - 1]] as const) {
      mkdirSync(join(dir, 'unet'), { recursive: true });
      writeFileSync(join(dir, 'unet', 'model.onnx_data'), '');
      truncateSync(join(dir, 'unet', 'model.onnx_data'), bytes);
    }
    assert.equal(modelFolderBytes(['generate', '--model', large]), LARGE_MODEL_BYTES);
    assert.equal(modelFolderBytes(['generate', `--model=${small}`]), LARGE_MODEL_BYTES - 1);
    // a Hub id: its cached snapshot of main once downloaded, nothing before
    const hub = join(tmp, 'hub');
    assert.equal(modelFolderBytes(['generate', '--model', 'owner/repo'], { HF_HUB_CACHE: hub }), 0);
    const commit = 'a'.repeat(40);
    mkdirSync(join(hub, 'models--owner--repo', 'refs'), { recursive: true });
    writeFileSync(join(hub, 'models--owner--repo', 'refs', 'main'), commit);
    mkdirSync(join(hub, 'models--owner--repo', 'snapshots', commit, 'unet'), { recursive: true });
    writeFileSync(join(hub, 'models--owner--repo', 'snapshots', commit, 'unet', 'diffusion_pytorch_model.safetensors'), '');
    truncateSync(join(hub, 'models--owner--repo', 'snapshots', commit, 'unet', 'diffusion_pytorch_model.safetensors'), LARGE_MODEL_BYTES);
    assert.equal(modelFolderBytes(['generate', '--model', 'owner/repo'], { HF_HUB_CACHE: hub }), LARGE_MODEL_BYTES);
    assert.equal(modelFolderBytes(['generate', '--model', 'owner/other'], { HF_HUB_CACHE: hub }), 0);
    // a ref that is not a commit names no snapshot
    writeFileSync(join(hub, 'models--owner--repo', 'refs', 'main'), '../../..');
    assert.equal(modelFolderBytes(['generate', '--model', 'owner/repo'], { HF_HUB_CACHE: hub }), 0);
    assert.equal(await relaunchWithAllocatorEnv(script, ['generate', '--model', large], env), 7);
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', '--model', small], env), undefined);
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', '--model', large], { ...env, SMASH_MALLOC_ENV: '0' }), undefined);
    // a small model by default: no relaunch; nor for commands without sessions
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', 'model', '--steps', '2'], env), undefined);
    assert.equal(relaunchWithAllocatorEnv(script, ['inspect', '--model', large, '--low-memory'], env), undefined);
    // already relaunched (or set by the user): no second relaunch
    assert.equal(relaunchWithAllocatorEnv(script, ['generate', 'model', '--low-memory'], { ...env, MALLOC_MMAP_THRESHOLD_: '2097152' }), undefined);
  });

  test('under the settings, activations above the threshold go back to the system after each run; under glibc\'s defaults they stay', (t) => {
    if (process.platform !== 'linux') return t.skip('the settings are glibc\'s (Linux only)');
    // Its own process each: glibc reads the settings at start. A graph with 6 MiB activations
    // (Tile → Sin → Cos → Exp) run 4 times, the arena off as the loader has it: RSS over RSS
    // after the session's creation. Measured: glibc's defaults kept 13–62 MiB (its mmap threshold
    // rises to the freed block's size, and later runs take them from the heap, which keeps them),
    // the settings 1.4 MiB. The full-size generation's figures are in the README ("Memory").
    const code = `
import { GraphBuilder } from './src/ir/builder.js';
import { tensor } from './src/core/tensor.js';
import { Session, f32 } from './src/runtime/session.js';
import { rssBytes } from './src/runtime/memory.js';
const b = new GraphBuilder();
const x = b.input('x', 'float32', [1, 1024]);
const big = b.op('Tile', [x, b.weight('reps', tensor.i64([2], [1536, 1]))]);
b.output(b.op('ReduceSum', [b.op('Exp', [b.op('Cos', [b.op('Sin', [big])])])], { keepdims: 0 }), 'sum');
const s = await Session.create(b.model(), { threads: 1, memArena: false });
const feeds = { x: f32([1, 1024], Array.from({ length: 1024 }, (_, i) => i / 1024)) };
const before = rssBytes();
for (let i = 0; i < 4; i++) await s.run(feeds);
console.log(JSON.stringify({ kept: rssBytes() - before }));
`;
    const kept = (extra: Record<string, string>) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        encoding: 'utf8', timeout: 60_000, env: { ...process.env, MALLOC_MMAP_THRESHOLD_: undefined, GLIBC_TUNABLES: undefined, ...extra },
      });
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { kept: number }).kept / 2 ** 20;
    };
    const settings = kept({ ...ALLOCATOR_ENV });
    assert.ok(settings < 4, `under the settings RSS stayed ${settings.toFixed(1)} MiB over RSS before the runs`);
    const glibc = kept({});
    assert.ok(glibc > 8, `under glibc's defaults only ${glibc.toFixed(1)} MiB stayed: the test no longer shows what the settings change`);
  });
});
