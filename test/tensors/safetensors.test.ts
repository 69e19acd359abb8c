import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../src/tensors/safetensors.js';
import { Checkpoint } from '../../src/tensors/checkpoint.js';
import { f32ToBf16, toFloat32 } from '../../src/core/float.js';
import { tensorData } from '../../src/core/tensor.js';
import { ModelFormatError } from '../../src/errors.js';
import { FIXTURES, fixture, tempDir } from '../helpers.js';

function* walk(d: string): Generator<string> {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (n.endsWith('.safetensors')) yield p;
  }
}

test('every fixture safetensors file reads and re-writes byte for byte', () => {
  const dir = tempDir('st-');
  let count = 0;
  for (const f of walk(FIXTURES)) {
    const s = SafetensorsFile.open(f);
    for (const n of s.names) tensorData(s.tensor(n)); // every tensor reads
    const out = join(dir, 'x.safetensors');
    writeSafetensors(out, new Map(s.names.map((n) => [n, s.tensor(n)])), s.metadata, s.layout);
    assert.ok(readFileSync(f).equals(readFileSync(out)), `re-writing ${f} differs`);
    count++;
  }
  assert.ok(count >= 50, `only ${count} fixture files found`);
});

test('BF16 flux-tiny transformer equals round-to-nearest-even BF16 of the F32 model', () => {
  const bf = Checkpoint.open(fixture('pipelines/flux-tiny/transformer'));
  const fp = Checkpoint.open(fixture('models/flux-transformer-tiny'));
  assert.equal(bf.names.length, 126);
  for (const n of bf.names) {
    const t = bf.tensor(n);
    assert.equal(t.dtype, 'bfloat16');
    const raw = tensorData(t) as Uint16Array;
    const ref = toFloat32(fp.tensor(n));
    for (let i = 0; i < ref.length; i++) if (raw[i] !== f32ToBf16(ref[i]!)) assert.fail(`${n}[${i}]: ${raw[i]} != bf16(${ref[i]})`);
  }
});

function writeRaw(header: string | object, data = Buffer.alloc(0), lenOverride?: bigint): string {
  const dir = tempDir('st-bad-');
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const p = join(dir, 'bad.safetensors');
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function rejects(path: string, code: string, tensor?: string) {
  assert.throws(() => SafetensorsFile.open(path), (e: unknown) => {
    assert.ok(e instanceof ModelFormatError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.file, path);
    assert.match(e.message, /bad\.safetensors/);
    if (tensor) assert.equal(e.tensor, tensor);
    return true;
  });
}

test('hostile safetensors files give typed errors naming file and tensor', () => {
  rejects(writeRaw('{}', Buffer.alloc(0), 1n << 40n), 'SAFETENSORS_HEADER_SIZE');
  rejects(writeRaw('{"a": nope}'), 'SAFETENSORS_HEADER_JSON');
  rejects(writeRaw({ a: { dtype: 'Q7', shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4)), 'SAFETENSORS_DTYPE', 'a');
  rejects(writeRaw({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)), 'SAFETENSORS_OFFSETS', 'a');
  rejects(writeRaw({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, Buffer.alloc(16)), 'SAFETENSORS_LENGTH', 'a');
  rejects(writeRaw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, Buffer.alloc(12)), 'SAFETENSORS_OVERLAP');
  const dir = tempDir('st-short-');
  writeFileSync(join(dir, 'bad.safetensors'), Buffer.alloc(3));
  rejects(join(dir, 'bad.safetensors'), 'SAFETENSORS_TRUNCATED');
});

test('F8 dtypes are recognised', () => {
  const p = writeRaw({ a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] }, b: { dtype: 'F8_E5M2', shape: [1], data_offsets: [2, 3] } }, Buffer.alloc(3));
  const s = SafetensorsFile.open(p);
  assert.equal(s.tensor('a').dtype, 'float8e4m3fn');
  assert.equal(s.tensor('b').dtype, 'float8e5m2');
});

test('sharded checkpoints load through the index like one file', () => {
  const src = SafetensorsFile.open(fixture('models/sd-vae-tiny/diffusion_pytorch_model.safetensors'));
  const dir = tempDir('shard-');
  const names = src.names;
  const half = Math.ceil(names.length / 2);
  const parts = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  parts.forEach((p, i) => {
    const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(dir, file), new Map(p.map((n) => [n, src.tensor(n)])));
    for (const n of p) weightMap[n] = file;
  });
  writeFileSync(join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const ck = Checkpoint.open(dir);
  assert.deepEqual(ck.names.sort(), [...names].sort());
  for (const n of names) assert.deepEqual(tensorData(ck.tensor(n)), tensorData(src.tensor(n)));
});
