import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
// @ts-expect-error: a plain .mjs script without types
import { OUT, PROTO, render } from '../../scripts/gen-onnx-schema.mjs';
import { onnxSchema } from '../../src/ir/onnx-schema.js';

test('the committed ONNX schema module is up to date with onnx.proto (node scripts/gen-onnx-schema.mjs)', () => {
  assert.equal(readFileSync(OUT as string, 'utf8'), (render as () => string)());
});

test('the compiled schema describes the same messages as onnx.proto', () => {
  const fromProto = protobuf.loadSync(PROTO as string);
  const fromJson = protobuf.Root.fromJSON(onnxSchema);
  assert.equal(JSON.stringify(fromJson.toJSON()), JSON.stringify(fromProto.toJSON()));
  const mp = { irVersion: 8, graph: { name: 'g', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }] }, opsetImport: [{ domain: '', version: 17 }] };
  const a = fromProto.lookupType('onnx.ModelProto');
  const b = fromJson.lookupType('onnx.ModelProto');
  assert.deepEqual(b.encode(b.fromObject(mp)).finish(), a.encode(a.fromObject(mp)).finish());
});

test('no library module reads a .proto file at run time', () => {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : []));
  for (const f of walk('src')) {
    const code = readFileSync(f, 'utf8').replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, '');
    assert.ok(!/\.proto['"`]|loadSync\(/.test(code), `${f} reads a .proto file`);
  }
});
