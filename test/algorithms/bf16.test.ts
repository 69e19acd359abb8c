import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { bf16 } from '../../src/algorithms/quantizers/bf16.js';
import type { SmashTarget } from '../../src/algorithms/algorithm.js';
import { CompatibilityError, ConfigError } from '../../src/errors.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { Model, type Node } from '../../src/ir/graph.js';
import { modulePath } from '../../src/ir/modules.js';
import { loadModel, saveModel } from '../../src/ir/model-file.js';
import { encodeModel } from '../../src/ir/serde.js';
import { castTensor, toFloat32 } from '../../src/core/float.js';
import { InMemoryTensor, tensorData } from '../../src/core/tensor.js';
import { PROFILES, type ProfileName } from '../../src/runtime/profiles.js';
import { SmashConfig } from '../../src/smash/config.js';
import { explainSteps, formatExplanation } from '../../src/smash/explain.js';
import { loadPipeline as loadOnnx } from '../../src/pipelines/loader.js';
import { smash } from '../../src/smash/smash.js';
import { buildComponent } from '../../src/models/convert.js';
import { fixture, tempDir } from '../helpers.js';
import { fluxDenoiser, opCounts, unetDenoiser } from './denoisers.js';

const BFLOAT16 = 16;
const target = (provider: ProfileName, denoiser: SmashTarget['denoiser'] = 'flux'): SmashTarget => ({ className: denoiser === 'flux' ? 'FluxPipeline' : 'StableDiffusionPipeline', denoiser, components: [], provider });
const convert = (m: Model, component: Parameters<NonNullable<ReturnType<typeof bf16.apply>['transform']>>[0], keep: string[] = [], provider: ProfileName = 'cuda') =>
  bf16.apply({ keep }, target(provider)).transform!(component, m);

const isFloat = (d: string | undefined) => d === 'float32' || d === 'bfloat16';
const castsTo = (m: Model, to: number) => m.graph.nodeList().filter((n) => n.opType === 'Cast' && n.attrInt('to', 0) === to).length;

/** Every node reads one float type (Resize's roi/scales excepted: float32 by the spec): what ONNX type inference demands. */
function assertTypeConsistent(m: Model): void {
  for (const n of m.graph.nodeList()) {
    if (n.opType === 'Cast') continue;
    const spec = n.opType === 'Resize' ? [0] : n.inputs.map((_, i) => i);
    const types = new Set(spec.map((i) => n.inputs[i]?.dtype).filter(isFloat));
    assert.ok(types.size <= 1, `${n.name} (${n.opType}) mixes ${[...types].join(' and ')}`);
  }
}

/** bfloat16 round-to-nearest: each weight within 2^-8 of its float32 value, relatively. */
function assertWeightsWithinBound(before: Model, after: Model): number {
  let n = 0;
  for (const [name, v] of after.graph.initializers) {
    if (v.const!.dtype !== 'bfloat16') continue;
    const ref = toFloat32(before.graph.initializers.get(name)!.const!);
    const got = toFloat32(v.const!);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Math.abs(got[i]! - ref[i]!) <= 2 ** -8 * Math.abs(ref[i]!), `${name}[${i}]: ${ref[i]} -> ${got[i]}`);
    }
    n++;
  }
  return n;
}

test('bf16 on Flux (cuda profile): bfloat16 weights and MatMuls, float32 IO, kept modules and timestep/rotary arithmetic float32, weights within 2^-8', () => {
  const d = fluxDenoiser();
  const before = d.build();
  const counts = opCounts(before);
  const m = convert(d.build(), d.component, ['proj_out']);
  const after = opCounts(m);
  for (const [op, c] of counts) assert.equal(after.get(op), op === 'Cast' ? after.get(op) : c, `${op} count unchanged`);
  assert.ok(castsTo(m, BFLOAT16) > 0);
  assert.equal(m.graph.initializers.get('transformer_blocks.0.attn.to_q.weight')!.const!.dtype, 'bfloat16');
  assert.equal(m.graph.initializers.get('proj_out.weight')!.const!.dtype, 'float32', 'a kept module keeps its float32 weight');
  const nodes = m.graph.nodeList();
  assert.ok(nodes.filter((n) => modulePath(n) === 'proj_out').every((n) => n.outputs.every((o) => o.dtype !== 'bfloat16')));
  const matmuls = nodes.filter((n) => n.opType === 'MatMul' && modulePath(n) !== 'proj_out');
  assert.ok(matmuls.length > 0 && matmuls.every((n) => n.outputs[0]!.dtype === 'bfloat16'), 'every MatMul outside kept modules runs in bfloat16');
  assert.ok(nodes.filter((n) => n.opType === 'Sin' || n.opType === 'Cos').every((n) => n.outputs[0]!.dtype === 'float32'), 'timestep and rotary Sin/Cos stay float32');
  assert.deepEqual(m.graph.inputs.filter((v) => v.dtype === 'bfloat16'), []);
  assert.deepEqual(m.graph.outputs.map((v) => v.dtype), ['float32']);
  assertTypeConsistent(m);
  assert.ok(assertWeightsWithinBound(before, m) > 10);
});

test('bf16 on a UNet (cuda profile): convolutions, Resize and the GroupNorm decomposition stay float32 (no CUDA bfloat16 kernels), attention MatMuls go bfloat16; valid ONNX', async () => {
  const d = unetDenoiser();
  const before = d.build();
  const m = convert(d.build(), d.component);
  const nodes = m.graph.nodeList();
  const convs = nodes.filter((n) => n.opType === 'Conv');
  assert.ok(convs.length > 0);
  for (const n of convs) {
    assert.deepEqual(n.inputs.filter(Boolean).map((v) => v!.dtype), n.inputs.filter(Boolean).map(() => 'float32'), `${n.name} reads float32`);
    assert.equal(n.outputs[0]!.dtype, 'float32');
  }
  for (const n of nodes.filter((x) => ['Resize', 'ReduceMean', 'Sqrt', 'Pow', 'Erf', 'Where'].includes(x.opType))) {
    assert.ok(n.outputs.every((o) => o.dtype !== 'bfloat16'), `${n.opType} ${n.name} has no CUDA bfloat16 kernel: float32`);
  }
  const byOp = (op: string) => nodes.filter((n) => n.opType === op);
  assert.ok(byOp('MatMul').length > 0 && byOp('MatMul').every((n) => n.outputs[0]!.dtype === 'bfloat16'));
  assert.ok(byOp('Softmax').every((n) => n.outputs[0]!.dtype === 'bfloat16'));
  // a conv weight stays float32; a projection weight goes bfloat16
  const dtypeOf = (n: Node, i: number) => n.inputs[i]!.dtype;
  assert.ok(convs.every((n) => dtypeOf(n, 1) === 'float32'));
  assert.ok([...m.graph.initializers.values()].some((v) => v.const!.dtype === 'bfloat16'));
  assert.deepEqual(m.graph.outputs.map((v) => v.dtype), ['float32']);
  assertTypeConsistent(m);
  assertWeightsWithinBound(before, m);
  // bfloat16 Conv is invalid ONNX below opset 22: ORT's type check passes, and only CPU kernels are missing
  const err = await ort.InferenceSession.create(encodeModel(m), { logSeverityLevel: 4 }).then((s) => s.release().then(() => 'loaded'), (e: Error) => e.message);
  assert.match(err, /Could not find an implementation for \w+\(\d+\)/);
});

test('bf16 leaves a force_upcast VAE and non-diffusion components in float32', () => {
  const vae = buildComponent(fixture('models', 'sd-vae-tiny')).decoder!;
  vae.metadataProps.set('force_upcast', 'true');
  const out = convert(vae, { name: 'vae_decoder', role: 'vae_decoder', architecture: 'AutoencoderKL' });
  assert.ok([...out.graph.initializers.values()].every((v) => v.const!.dtype === 'float32'));
  assert.equal(castsTo(out, BFLOAT16), 0);
  assert.deepEqual(bf16.apply({ keep: [] }, target('cuda')).touches!({ name: 'vae_decoder', role: 'vae_decoder', architecture: 'AutoencoderKL' }, vae), []);
});

test('bf16 supports only providers with bfloat16 kernels, saying why elsewhere', () => {
  assert.deepEqual(bf16.supports(target('cuda')), { ok: true });
  for (const p of ['cpu', 'wasm', 'webgpu', 'dml'] as const) {
    const s = bf16.supports(target(p));
    assert.equal(s.ok, false, p);
    if (!s.ok) {
      assert.ok(s.reason.includes(p), `${p}: ${s.reason}`);
      assert.match(s.reason, /bfloat16/);
    }
  }
  assert.equal(bf16.supports({ className: 'FluxPipeline', denoiser: 'flux', components: [] }).ok, false, 'no provider means cpu');
});

test('the cpu profile matches onnxruntime-node: bfloat16 LayerNormalization runs, MatMul has no kernel', async () => {
  const run = async (op: string, build: (b: GraphBuilder, x: ReturnType<GraphBuilder['input']>) => ReturnType<GraphBuilder['op']>) => {
    const b = new GraphBuilder();
    const x = b.input('x', 'float32', [2, 4]);
    const y = build(b, b.op('Cast', [x], { to: BFLOAT16 }));
    y.dtype = 'bfloat16';
    b.output(b.op('Cast', [y], { to: 1 }), 'y', 'float32');
    try {
      const s = await ort.InferenceSession.create(encodeModel(new Model(b.graph)), { logSeverityLevel: 4 });
      await s.run({ x: new ort.Tensor('float32', Float32Array.from({ length: 8 }, (_, i) => i / 8), [2, 4]) });
      await s.release();
      return 'ok';
    } catch (e) {
      return String((e as Error).message);
    }
  };
  const w = (b: GraphBuilder, name: string, shape: number[]) => b.weight(name, castTensor(new InMemoryTensor('float32', shape, new Float32Array(shape.reduce((a, c) => a * c, 1)).fill(0.5)), 'bfloat16'));
  const matmul = await run('MatMul', (b, x) => b.op('MatMul', [x, w(b, 'w', [4, 4])]));
  assert.match(matmul, /Could not find an implementation for MatMul/);
  assert.equal(PROFILES.cpu.bf16.has('MatMul'), false);
  assert.match(PROFILES.cpu.bf16Missing!, /MatMul/);
  assert.equal(await run('LayerNormalization', (b, x) => b.op('LayerNormalization', [x, w(b, 's', [4]), w(b, 'c', [4])], { axis: -1 })), 'ok');
  assert.equal(PROFILES.cpu.bf16.has('LayerNormalization'), true);
  assert.equal(PROFILES.cuda.bf16.has('MatMul'), true);
});

test('bf16 config: hyperparameters validated, no second quantizer, shown by explain on cuda and refused on cpu', () => {
  assert.deepEqual(new SmashConfig({ bf16: {} }).toJSON(), { bf16: { keep: [] } });
  assert.throws(() => new SmashConfig({ bf16: { keep: 'proj_out' } }), (e: unknown) => e instanceof ConfigError && e.code === 'BAD_HYPERPARAMETER' && e.message.includes('bf16.keep'));
  assert.throws(() => new SmashConfig({ bf16: { dtype: 'float16' } }), (e: unknown) => e instanceof ConfigError && e.message.includes('bf16'));
  assert.throws(() => new SmashConfig({ fp16: {}, bf16: {} }), (e: unknown) => e instanceof CompatibilityError && e.code === 'INCOMPATIBLE');
  const m = fluxDenoiser().build();
  const ops = opCounts(m);
  const steps = explainSteps(new SmashConfig({ bf16: { keep: ['proj_out'] } }), target('cuda'), new Map([['transformer', m]]));
  assert.deepEqual(opCounts(m), ops, 'explain changes nothing');
  assert.ok(steps[0]!.touches.transformer!.includes('transformer_blocks'));
  assert.ok(!steps[0]!.touches.transformer!.includes('proj_out'), 'a kept module is not touched');
  assert.match(formatExplanation(steps), /^1\. bf16 \(quantizer\): bfloat16 [^\n]*\n   hyperparameters: \{"keep":\["proj_out"\]\}\n   transformer: \d+ modules: /);
  assert.throws(() => explainSteps(new SmashConfig({ bf16: {} }), target('cpu'), new Map([['transformer', m]])), (e: unknown) => e instanceof CompatibilityError && /bf16 does not support FluxPipeline: .*cpu/.test(e.message));
});

test('a bf16 graph saves and loads as it was (bfloat16 weights bit for bit, Casts, float32 IO); ORT on CPU loads it as valid ONNX and stops only at the missing kernels', async () => {
  const d = fluxDenoiser();
  const m = convert(d.build(), d.component);
  const dir = tempDir('smash-bf16-');
  const file = join(dir, 'model.onnx');
  saveModel(m, file);
  const back = loadModel(file);
  assert.deepEqual(opCounts(back), opCounts(m));
  assert.equal(castsTo(back, BFLOAT16), castsTo(m, BFLOAT16));
  for (const [name, v] of m.graph.initializers) {
    const w = back.graph.initializers.get(name)!;
    assert.equal(w.const!.dtype, v.const!.dtype, name);
    if (v.const!.dtype === 'bfloat16') assert.deepEqual(tensorData(w.const!), tensorData(v.const!), name);
  }
  assert.deepEqual(back.graph.inputs.map((v) => v.dtype), m.graph.inputs.map((v) => v.dtype));
  assert.deepEqual(back.graph.outputs.map((v) => v.dtype), ['float32']);
  const err = await ort.InferenceSession.create(file, { logSeverityLevel: 4 }).then((s) => s.release().then(() => 'loaded'), (e: Error) => e.message);
  assert.match(err, /Could not find an implementation for \w+\(\d+\)/, 'type inference passes; only kernels are missing');
});

test('smash() with bf16 on cpu fails before any work with a CompatibilityError naming the provider', async () => {
  const base = await loadOnnx(fixture('pipelines', 'flux-tiny'), { cacheDir: join(tempDir('smash-bf16-cache-'), 'cache'), threads: 1 });
  try {
    await assert.rejects(smash(base, { bf16: {} }), (e: unknown) => e instanceof CompatibilityError && e.code === 'UNSUPPORTED' && /cpu provider has no bfloat16 MatMul/.test(e.message));
    await assert.rejects(smash(base, { bf16: {} }, { provider: 'webgpu' }), (e: unknown) => e instanceof CompatibilityError && /webgpu/.test(e.message));
  } finally {
    await base.release();
  }
});
