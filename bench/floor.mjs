// The floor of a denoiser step: its matrix FLOPs (MatMul, Gemm, Conv), worked out from the graph's
// shapes with our IR's type inference at the workload's input shapes, over the GEMM throughput
// this machine reaches in onnxruntime (float32 MatMul; int8 DynamicQuantizeMatMul and
// MatMulInteger), measured on small graphs built with our IR. A configuration's distance from
// the floor is its denoise time over (calls × FLOPs / throughput).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const lib = await import(join(root, 'dist', 'index.js'));
const { inferNodeTypes, constInts } = await import(join(root, 'dist', 'ir', 'type-inference.js'));

const prod = (xs) => xs.reduce((a, b) => a * b, 1);
const known = (s) => Array.isArray(s) && s.every((d) => typeof d === 'number');

/**
 * FLOPs (multiply-adds × 2) of one call of `model` with its inputs fixed to `shapes` (name →
 * dims). Returns `{ total, weight, activation, conv, unknown }`: weight = products with a constant
 * operand (what int8 quantizers turn into int8 GEMMs), activation = products of two computed
 * tensors (attention scores and values), conv = convolutions; `unknown` counts nodes whose shapes
 * the inference could not work out (their FLOPs are missing from the totals).
 */
export function graphFlops(model, shapes) {
  const g = model.graph;
  for (const v of g.inputs) if (shapes[v.name]) v.shape = [...shapes[v.name]];
  // every computed value is inferred again from the fixed inputs (the builder's shapes carry symbolic dims)
  const isConst = (v) => !!v && (v.const !== undefined || v.producer?.opType === 'Constant');
  for (const n of g.nodes()) for (const o of n.outputs) if (n.opType !== 'Constant') o.shape = undefined;
  inferShapes(g);
  const out = { total: 0, weight: 0, activation: 0, conv: 0, unknown: 0, unknownNodes: [] };
  for (const n of g.nodes()) {
    const [a, b] = n.inputs;
    const y = n.outputs[0];
    if (n.opType === 'MatMul' || n.opType === 'Gemm') {
      if (!known(a?.shape) || !known(y?.shape)) { out.unknown++; out.unknownNodes.push(n.name); continue; }
      const k = n.opType === 'Gemm' && n.attrInt('transA', 0) ? a.shape[0] : a.shape[a.shape.length - 1];
      const f = 2 * prod(y.shape) * k;
      out.total += f;
      if (isConst(b) || (b?.producer?.opType === 'Transpose' && isConst(b.producer.inputs[0]))) out.weight += f;
      else out.activation += f;
    } else if (n.opType === 'Conv') {
      if (!known(b?.shape) || !known(y?.shape)) { out.unknown++; out.unknownNodes.push(n.name); continue; }
      // per output value: Cin/group × kh × kw multiply-adds
      const f = 2 * prod(y.shape) * prod(b.shape.slice(1));
      out.total += f;
      out.conv += f;
    }
  }
  return out;
}

/** The contents of a small float constant (Resize's scales). */
function floats(v) {
  if (!v) return undefined;
  let t = v.const;
  if (!t && v.producer?.opType === 'Constant') {
    const at = v.producer.attr('value');
    if (at?.type === 'tensor') t = at.value;
  }
  return t && t.dtype === 'float32' && prod(t.shape) <= 8 ? Array.from(lib.tensorData(t)) : undefined;
}

/**
 * Shapes of every value at the fixed input shapes: the IR's inference, plus the small integer
 * tensors that shape computations make (Shape → Gather → Concat → Reshape), which it leaves
 * unknown because they are not constants, and Split's several outputs.
 */
function inferShapes(g) {
  const ints = new Map();
  const val = (v) => (v ? ints.get(v) ?? constInts(v) : undefined);
  const elementwise = { Add: (a, b) => a + b, Sub: (a, b) => a - b, Mul: (a, b) => a * b, Div: (a, b) => Math.trunc(a / b) };
  for (const n of g.nodes()) {
    const [a, b] = n.inputs;
    const y = n.outputs[0];
    const va = val(a);
    switch (n.opType) {
      case 'Shape':
        if (known(a?.shape)) {
          const r = a.shape.length;
          const norm = (i) => Math.min(Math.max(i < 0 ? i + r : i, 0), r);
          ints.set(y, a.shape.slice(norm(n.attrInt('start', 0)), norm(n.attrInt('end', r))));
        }
        break;
      case 'Gather': {
        const vi = val(b);
        if (va && vi && n.attrInt('axis', 0) === 0) ints.set(y, vi.map((i) => va[i < 0 ? i + va.length : i]));
        break;
      }
      case 'Unsqueeze': case 'Squeeze': case 'Cast': case 'Identity':
        if (va) ints.set(y, va);
        break;
      case 'Concat':
        if (n.inputs.every((i) => val(i))) ints.set(y, n.inputs.flatMap((i) => val(i)));
        break;
      case 'Slice': {
        const st = val(n.inputs[1]);
        const en = val(n.inputs[2]);
        if (va && st && en && st.length === 1) ints.set(y, va.slice(st[0], Math.min(en[0], va.length)));
        break;
      }
      case 'Add': case 'Sub': case 'Mul': case 'Div': {
        const vb = val(b);
        if (va && vb && (va.length === vb.length || va.length === 1 || vb.length === 1)) {
          const len = Math.max(va.length, vb.length);
          ints.set(y, Array.from({ length: len }, (_, i) => elementwise[n.opType](va[va.length === 1 ? 0 : i], vb[vb.length === 1 ? 0 : i])));
        }
        break;
      }
      default:
    }
    if (n.opType === 'Reshape' && known(a?.shape) && val(b)) {
      const t = val(b).map((d, i) => (d === 0 ? a.shape[i] : d));
      const rest = t.reduce((p, d) => (d === -1 ? p : p * d), 1);
      y.shape = t.map((d) => (d === -1 ? prod(a.shape) / rest : d));
    } else if (n.opType === 'Expand' && known(a?.shape) && val(b)) {
      const t = val(b);
      const r = Math.max(t.length, a.shape.length);
      const pad = (s) => [...Array(r - s.length).fill(1), ...s];
      y.shape = pad(a.shape).map((d, i) => Math.max(d, pad(t)[i]));
    } else if (n.opType === 'Slice' && known(a?.shape) && val(n.inputs[1]) && val(n.inputs[2])) {
      const [st, en] = [val(n.inputs[1]), val(n.inputs[2])];
      const axes = val(n.inputs[3]) ?? st.map((_, i) => i);
      const steps = val(n.inputs[4]) ?? st.map(() => 1);
      const shape = [...a.shape];
      axes.forEach((ax0, i) => {
        const ax = ax0 < 0 ? ax0 + shape.length : ax0;
        const d = a.shape[ax];
        const clamp = (v) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
        shape[ax] = Math.max(0, Math.ceil((clamp(en[i]) - clamp(st[i])) / steps[i]));
      });
      y.shape = shape;
    } else if (n.opType === 'Resize' && known(a?.shape) && (val(n.inputs[3]) || floats(n.inputs[2]))) {
      const sizes = val(n.inputs[3]);
      y.shape = sizes ?? a.shape.map((d, i) => Math.floor(d * floats(n.inputs[2])[i]));
    } else if (n.opType === 'Split' && known(a?.shape)) {
      const axis = (n.attrInt('axis', 0) + a.shape.length) % a.shape.length;
      const sizes = val(b) ?? n.attrInts('split') ?? n.outputs.map(() => a.shape[axis] / n.outputs.length);
      n.outputs.forEach((o, i) => { o.shape = a.shape.map((d, j) => (j === axis ? sizes[i] : d)); });
    } else inferNodeTypes(n);
  }
}

/** FLOPs of one call of a denoiser ONNX file at the given input shapes. */
export function denoiserFlops(onnxFile, shapes) {
  return graphFlops(lib.loadModel(onnxFile), shapes);
}

function randomData(n, scale, int8 = false) {
  const a = int8 ? new Int8Array(n) : new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = int8 ? ((s >>> 16) % 255) - 127 : ((s >>> 8) / 2 ** 24 - 0.5) * scale;
  }
  return a;
}

/** x[M,K] × W[K,N] as one node: float32 `MatMul`, `DynamicQuantizeMatMul`, or `MatMulInteger` (u8 × s8). */
function gemmModel(kind, M, K, N) {
  const b = new lib.GraphBuilder('gemm');
  const x = b.input('x', kind === 'MatMulInteger' ? 'uint8' : 'float32', [M, K]);
  let y;
  if (kind === 'MatMul') y = b.matmul(x, b.weight('w', new lib.InMemoryTensor('float32', [K, N], randomData(K * N, 0.1))));
  else {
    const w = b.weight('wq', new lib.InMemoryTensor('int8', [K, N], randomData(K * N, 0, true)));
    if (kind === 'DynamicQuantizeMatMul') {
      const scale = b.weight('scale', new lib.InMemoryTensor('float32', [N], new Float32Array(N).fill(0.01)));
      y = b.op('DynamicQuantizeMatMul', [x, w, scale], {}, { domain: 'com.microsoft', dtype: 'float32' });
    } else {
      y = b.op('MatMulInteger', [x, w, b.constant(new lib.InMemoryTensor('uint8', [], new Uint8Array([128])))], {}, { dtype: 'int32' });
    }
  }
  b.output(y, 'y');
  const m = new lib.Model(b.graph);
  m.opsetImports.set('com.microsoft', 1);
  return m;
}

/**
 * GEMM throughput in GFLOP/s (GOPS for int8): the fastest of `repeat` timed calls after warm-up, each
 * kind interleaved with the others so the machine's load falls on all alike.
 */
export async function measureGemm({ M = 384, K = 768, N = 3072, repeat = 15, threads } = {}) {
  const kinds = ['MatMul', 'DynamicQuantizeMatMul', 'MatMulInteger'];
  const sessions = {};
  const feeds = {};
  for (const k of kinds) {
    sessions[k] = await lib.Session.create(gemmModel(k, M, K, N), { threads });
    feeds[k] = { x: k === 'MatMulInteger' ? { dtype: 'uint8', dims: [M, K], data: Uint8Array.from(randomData(M * K, 0, true), (v) => v + 128) } : { dtype: 'float32', dims: [M, K], data: randomData(M * K, 2) } };
  }
  const times = Object.fromEntries(kinds.map((k) => [k, []]));
  for (let r = -3; r < repeat; r++) {
    for (const k of kinds) {
      const t0 = performance.now();
      await sessions[k].run(feeds[k]);
      if (r >= 0) times[k].push(performance.now() - t0);
    }
  }
  for (const s of Object.values(sessions)) await s.release();
  // the fastest call: a floor is what the machine can do, and a shared machine only slows calls down
  const flop = 2 * M * K * N;
  const rate = (k) => flop / (Math.min(...times[k]) / 1000) / 1e9;
  return { shape: [M, K, N], fp32GFlops: rate('MatMul'), int8DynamicGOps: rate('DynamicQuantizeMatMul'), int8IntegerGOps: rate('MatMulInteger') };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(await measureGemm());
}
