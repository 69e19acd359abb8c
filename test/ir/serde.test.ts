import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Graph, allNodes } from '../../src/ir/graph.js';
import { tensor } from '../../src/core/tensor.js';
import { decodeModel, encodeModel } from '../../src/ir/serde.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { Session, f32 } from '../../src/runtime/session.js';
import { expectFormatError, tempDir } from '../helpers.js';

/** y = x·W + If(cond, x·W2, x) with 64×64 weights (big enough to go to external data). */
function ifModel() {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['batch', 64]);
  const cond = b.input('cond', 'bool', []);
  const w = b.scope('lin', () => b.weight('weight', tensor.f32([64, 64], Array.from({ length: 4096 }, (_, i) => Math.sin(i)))));
  const then = new GraphBuilder(new Graph('then'));
  then.output(then.scope('branch', () => then.matmul(x, then.weight('w2', tensor.f32([64, 64], Array.from({ length: 4096 }, (_, i) => Math.cos(i)))))));
  const els = new GraphBuilder(new Graph('else'));
  els.output(els.op('Identity', [x]));
  const h = b.scope('lin', () => b.matmul(x, w));
  const r = b.op('If', [cond], { then_branch: then.graph, else_branch: els.graph });
  b.output(b.add(h, r), 'y', 'float32', ['batch', 64]);
  const m = b.model();
  m.metadataProps.set('purpose', 'test');
  return m;
}

const feeds = (c: boolean) => ({
  x: f32([3, 64], Array.from({ length: 192 }, (_, i) => (i % 17) / 10 - 0.8)),
  cond: { dtype: 'bool' as const, dims: [], data: Uint8Array.of(c ? 1 : 0) },
});

test('a model with an If subgraph and external data runs bit-identically after save and load', async () => {
  const m = ifModel();
  const before = await Session.create(m);
  const dir = tempDir('ir-');
  const path = join(dir, 'model.onnx');
  saveModel(m, path);
  assert.ok(existsSync(join(dir, 'model.onnx_data')));
  const loaded = loadModel(path);
  // the subgraph's weight went external too, at a 4 KiB-aligned offset
  const inits = [...loaded.graph.initializers.values(), ...[...allNodes(loaded.graph)].flatMap((n) => n.subgraphs().flatMap((g) => [...g.initializers.values()]))];
  assert.equal(inits.length, 2);
  for (const v of inits) {
    assert.ok(v.const!.location, `${v.name} should be external`);
    assert.equal(v.const!.location!.offset % 4096, 0);
  }
  assert.equal(loaded.metadataProps.get('purpose'), 'test');
  const fromFile = await Session.create(path);
  const fromIr = await Session.create(loaded);
  for (const c of [true, false]) {
    const a = (await before.run(feeds(c))).outputs.y!.data as Float32Array;
    const b2 = (await fromFile.run(feeds(c))).outputs.y!.data as Float32Array;
    const c2 = (await fromIr.run(feeds(c))).outputs.y!.data as Float32Array;
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b2.buffer)));
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(c2.buffer)));
  }
});

test('external data splits into several files under the size limit', () => {
  const m = ifModel();
  const dir = tempDir('ir-split-');
  saveModel(m, join(dir, 'model.onnx'), { maxFileBytes: 20000 });
  assert.ok(existsSync(join(dir, 'model.onnx_data')));
  assert.ok(existsSync(join(dir, 'model.onnx_data.1')));
  const re = loadModel(join(dir, 'model.onnx'));
  assert.equal(re.graph.initializers.size, 1);
});

test('encode/decode keeps attributes of every kind, domains and opsets', () => {
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', [2, 'n']);
  const y = b.op('Custom', [x, null], { f: 0.5, i: 3, s: 'hi', fs: [0.5, 1.5], is: [1, 2], ss: ['a', 'b'], t: tensor.f32([2], [1, 2]) }, { domain: 'com.microsoft' });
  b.output(y, 'y', 'float32', [2, 'n']);
  const m = b.model({ '': 17, 'com.microsoft': 1 });
  const back = decodeModel(encodeModel(m));
  const n = back.graph.nodeList()[0]!;
  assert.equal(n.qualifiedType(), 'com.microsoft.Custom');
  assert.deepEqual(n.inputs.map((v) => v?.name ?? null), ['x', null]);
  assert.deepEqual(n.attr('f'), { type: 'float', value: 0.5 });
  assert.deepEqual(n.attr('i'), { type: 'int', value: 3 });
  assert.deepEqual(n.attr('s'), { type: 'string', value: 'hi' });
  assert.deepEqual(n.attr('is'), { type: 'ints', value: [1, 2] });
  assert.deepEqual(n.attr('ss'), { type: 'strings', value: ['a', 'b'] });
  assert.deepEqual([...back.opsetImports], [['', 17], ['com.microsoft', 1]]);
  assert.deepEqual(back.graph.inputs[0]!.shape, [2, 'n']);
});


/** Saves ifModel, then rewrites the location/offset of its first external tensor. */
function tampered(edit: (dir: string) => { location?: string; offset?: number }): string {
  const dir = tempDir('ir-bad-');
  const m = ifModel();
  saveModel(m, join(dir, 'model.onnx'));
  const re = loadModel(join(dir, 'model.onnx'));
  const { location, offset } = edit(dir);
  const bytes = encodeModel(re, (name, t) => ({ location: location ?? 'model.onnx_data', offset: offset ?? t.location!.offset, length: t.byteLength }));
  writeFileSync(join(dir, 'model.onnx'), bytes);
  return join(dir, 'model.onnx');
}

test('bad ONNX input gives typed errors naming the file', () => {
  const dir = tempDir('ir-junk-');
  writeFileSync(join(dir, 'junk.onnx'), Buffer.from('this is not a protobuf at all, just text\n'));
  expectFormatError(() => loadModel(join(dir, 'junk.onnx')), 'ONNX_PROTOBUF', /junk\.onnx/);
  // truncated protobuf
  const m = ifModel();
  writeFileSync(join(dir, 'full.onnx'), encodeModel(m));
  writeFileSync(join(dir, 'cut.onnx'), readFileSync(join(dir, 'full.onnx')).subarray(0, 500));
  expectFormatError(() => loadModel(join(dir, 'cut.onnx')), 'ONNX_PROTOBUF', /cut\.onnx/);
  expectFormatError(() => loadModel(join(dir, 'missing.onnx')), 'FILE_MISSING', /missing\.onnx/);
});

test('external data outside the model folder, out of range, or missing is refused', () => {
  expectFormatError(() => loadModel(tampered(() => ({ location: '/etc/passwd' }))), 'EXTERNAL_DATA_PATH');
  expectFormatError(() => loadModel(tampered(() => ({ location: '../model.onnx_data' }))), 'EXTERNAL_DATA_PATH');
  expectFormatError(() => loadModel(tampered(() => ({ location: 'sub/../../x' }))), 'EXTERNAL_DATA_PATH');
  expectFormatError(() => loadModel(tampered(() => ({ offset: 1 << 30 }))), 'EXTERNAL_DATA_RANGE', /lin\.weight|branch\.w2/);
  expectFormatError(() => loadModel(tampered(() => ({ location: 'nothere.bin' }))), 'EXTERNAL_DATA_MISSING', /nothere\.bin/);
  // a symlink inside the folder that points out of it
  const outside = tempDir('ir-outside-');
  writeFileSync(join(outside, 'secret.bin'), Buffer.alloc(1 << 16));
  expectFormatError(() => loadModel(tampered((dir) => {
    mkdirSync(join(dir, 'sub'));
    symlinkSync(join(outside, 'secret.bin'), join(dir, 'sub', 'link.bin'));
    return { location: 'sub/link.bin' };
  })), 'EXTERNAL_DATA_PATH');
  // a data file shorter than its tensors
  const p = tampered(() => ({}));
  truncateSync(join(p, '..', 'model.onnx_data'), 100);
  expectFormatError(() => loadModel(p), 'EXTERNAL_DATA_RANGE');
});

test('serde.ts is protobuf <-> IR only: no file I/O, and src/ir imports nothing above ir/, core/ and errors', () => {
  const serde = readFileSync('src/ir/serde.ts', 'utf8');
  assert.ok(!/from 'node:(fs|path)'/.test(serde), 'serde.ts does file I/O');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
  for (const f of walk('src/ir')) {
    for (const [, spec] of readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = join(dirname(f), spec!);
      assert.ok(/^src\/(ir|core)\//.test(target) || target === 'src/errors.js', `${f} imports ${spec}`);
    }
  }
});
