// The diffusers peer: diffusers + PyTorch on CPU, on the same diffusers folder our pipeline
// converts from and from the same initial latents, so a benchmark can put our times beside what a
// Python user would run. A long-lived Python process (diffusers_peer.py beside this file) loads
// the pipeline once and answers JSON lines; arrays travel as base64 of little-endian float32.
// Setup (a Python with torch, transformers and diffusers): bench/README.md, 'Peer: diffusers'.
//
//   const peer = await openPeer({ modelDir, kind: 'flux', dtype: 'float32', threads: 2 });
//   const { ms, stages, image } = await peer.generate({ prompt, width, height, steps, guidance,
//     seed, latents, maxSequenceLength, returnImage: true });
//   await peer.close();
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { CompatibilityError, ConfigError, RuntimeFailure } = await import(join(here, '..', '..', 'dist', 'errors.js'));

const SCRIPT = join(here, 'diffusers_peer.py');
/** VAE downsampling of every pipeline the peer runs (SD 1.x and Flux): latents are H/8 × W/8. */
const VAE_SCALE = 8;
const STDERR_KEEP = 16 * 1024;

/**
 * Starts the peer and waits until its pipeline is loaded.
 * @param {{ python?: string, modelDir: string, kind: 'flux' | 'sd', dtype?: 'float32' | 'bfloat16',
 *   threads?: number, env?: Record<string, string>, verbose?: boolean }} options
 *   `python`: the interpreter (default $SMASH_PEER_PYTHON, else python3); `threads`: torch's
 *   intra-op threads (and OMP/MKL's); `env`: more environment for the peer (e.g.
 *   OMP_WAIT_POLICY: 'PASSIVE', see bench/README.md); `verbose`: forward the peer's stderr.
 * @returns {Promise<{ info: object, generate: (req: object) => Promise<{ ms: number,
 *   stages: { encode: number, decode: number, denoise: number }, roundTripMs: number,
 *   image?: Float32Array, imageShape?: number[] }>, close: () => Promise<void> }>}
 * @throws CompatibilityError PEER_UNAVAILABLE when python, numpy, torch, transformers or
 *   diffusers cannot be started or imported (the message names which); RuntimeFailure
 *   PEER_LOAD_FAILED when the folder does not load; ConfigError for bad options.
 */
export async function openPeer({ python = process.env.SMASH_PEER_PYTHON ?? 'python3', modelDir, kind, dtype = 'float32', threads, env: extraEnv = {}, verbose = false }) {
  if (kind !== 'flux' && kind !== 'sd') throw new ConfigError('BAD_OPTION', `openPeer: kind must be 'flux' or 'sd', got ${JSON.stringify(kind)}`, 'kind');
  if (dtype !== 'float32' && dtype !== 'bfloat16') throw new ConfigError('BAD_OPTION', `openPeer: dtype must be 'float32' or 'bfloat16', got ${JSON.stringify(dtype)}`, 'dtype');
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) throw new ConfigError('BAD_OPTION', `openPeer: threads must be a positive integer, got ${threads}`, 'threads');
  const dir = resolve(modelDir ?? '');
  if (!modelDir || !existsSync(join(dir, 'model_index.json'))) throw new ConfigError('BAD_OPTION', `openPeer: ${dir} is not a diffusers folder (no model_index.json)`, 'modelDir');
  // the protocol's float32 arrays are little-endian, as this machine's memory must then be
  if (endianness() !== 'LE') throw new CompatibilityError('PEER_UNAVAILABLE', 'the diffusers peer needs a little-endian machine');

  const args = [SCRIPT, '--model-dir', dir, '--kind', kind, '--dtype', dtype];
  const env = { ...process.env, PYTHONUNBUFFERED: '1' };
  if (threads) {
    args.push('--threads', String(threads));
    // set before torch is imported: OpenMP/MKL size their pools at start-up
    Object.assign(env, { OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) });
  }
  Object.assign(env, extraEnv);
  const child = spawn(python, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s) => {
    if (verbose) process.stderr.write(s);
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  child.stdin.on('error', () => {}); // a dead peer is reported through 'close'

  const pending = new Map();
  let nextId = 1;
  let failure = null;
  let onReady;
  const ready = new Promise((res, rej) => { onReady = { res, rej }; });

  const fail = (err) => {
    if (failure) return;
    failure = err;
    onReady.rej(err);
    for (const p of pending.values()) p.rej(err);
    pending.clear();
  };
  child.on('error', (e) => fail(e.code === 'ENOENT'
    ? new CompatibilityError('PEER_UNAVAILABLE', `the diffusers peer needs Python: ${python} was not found (set SMASH_PEER_PYTHON; see bench/README.md, 'Peer: diffusers')`)
    : new RuntimeFailure('PEER_FAILED', `could not start ${python}: ${e.message}`)));
  // 'close', not 'exit': it comes after stdout has ended, so a last protocol line (the reason a
  // peer could not start) is read before the bare exit is reported
  const exited = new Promise((res) => child.on('close', (code, signal) => {
    fail(new RuntimeFailure('PEER_FAILED', `the diffusers peer (${python}) exited (${signal ?? `code ${code}`})${stderr ? `:\n${stderr.trim().split('\n').slice(-15).join('\n')}` : ''}`));
    res();
  }));

  createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      fail(new RuntimeFailure('PEER_FAILED', `the diffusers peer wrote a line that is not JSON: ${line.slice(0, 200)}`));
      return;
    }
    if (msg.type === 'ready') onReady.res(msg);
    else if (msg.type === 'error') {
      fail(msg.code === 'PEER_UNAVAILABLE'
        ? new CompatibilityError('PEER_UNAVAILABLE', `the diffusers peer cannot run: ${msg.missing} is missing (${msg.message}); see bench/README.md, 'Peer: diffusers'`)
        : new RuntimeFailure(msg.code ?? 'PEER_FAILED', `the diffusers peer could not load ${dir}: ${msg.message}`));
    } else {
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.res(msg);
      else p.rej(new RuntimeFailure('PEER_FAILED', `the diffusers peer failed a generation: ${msg.error}`));
    }
  });

  let info;
  try {
    info = await ready;
  } catch (e) {
    child.kill();
    throw e;
  }

  const request = (obj) => {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise((res, rej) => {
      pending.set(id, { res, rej });
      child.stdin.write(`${JSON.stringify({ id, ...obj })}\n`);
    });
  };

  return {
    /** versions, threads and the scheduler class the peer loaded */
    info,
    /**
     * One image from the given initial latents (unpacked NCHW float32 [1, C, H/8, W/8], as our
     * generate({ latents }) takes them). `ms` and `stages` are timed inside Python (text encode,
     * the denoising loop, VAE decode and post-processing); `roundTripMs` adds the transport.
     */
    async generate({ prompt, negativePrompt, width, height, steps, guidance, seed = 0, latents, maxSequenceLength, returnImage = false }) {
      if (typeof prompt !== 'string') throw new ConfigError('BAD_OPTION', 'peer.generate: prompt must be a string', 'prompt');
      for (const [k, v] of Object.entries({ width, height, steps })) {
        if (!(Number.isInteger(v) && v > 0)) throw new ConfigError('BAD_OPTION', `peer.generate: ${k} must be a positive integer, got ${v}`, k);
      }
      if (width % (kind === 'flux' ? 2 * VAE_SCALE : VAE_SCALE) || height % (kind === 'flux' ? 2 * VAE_SCALE : VAE_SCALE)) {
        throw new ConfigError('BAD_OPTION', `peer.generate: width and height must be multiples of ${kind === 'flux' ? 16 : 8}, got ${width}×${height}`, 'width');
      }
      if (!(latents instanceof Float32Array)) throw new ConfigError('BAD_OPTION', 'peer.generate: latents must be a Float32Array (unpacked NCHW)', 'latents');
      const h = height / VAE_SCALE;
      const w = width / VAE_SCALE;
      const channels = latents.length / (h * w);
      if (!Number.isInteger(channels) || channels < 1) {
        throw new ConfigError('BAD_OPTION', `peer.generate: latents hold ${latents.length} values, not [1, C, ${h}, ${w}] for ${width}×${height}`, 'latents');
      }
      const t0 = performance.now();
      const res = await request({
        op: 'generate', prompt, negativePrompt, width, height, steps, guidance, seed, maxSequenceLength, returnImage,
        latents: Buffer.from(latents.buffer, latents.byteOffset, latents.byteLength).toString('base64'),
        latentsShape: [1, channels, h, w],
      });
      const out = { ms: res.ms, stages: res.stages, roundTripMs: performance.now() - t0 };
      if (res.image !== undefined) {
        const bytes = Buffer.from(res.image, 'base64');
        // copy into an aligned buffer of its own (a Buffer may sit at any offset of a pool)
        out.image = new Float32Array(bytes.byteLength / 4);
        new Uint8Array(out.image.buffer).set(bytes);
        out.imageShape = res.imageShape;
      }
      return out;
    },
    /** Ends the peer (it finishes the request under way first). */
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end(`${JSON.stringify({ op: 'close' })}\n`);
        const timer = setTimeout(() => child.kill(), 10_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}
