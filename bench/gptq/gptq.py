# GPTQ against round-to-nearest at int4 (MatMulNBits' symmetric blocks, or with zero points), on
# the graphs dump.ts writes: quantized weights are dequantized back into the float graph and one
# call's output is compared with float32 (relative L2). Round-to-nearest fits each block's scale
# as nbits.ts does (least squared error over range shrink factors), so its figures reproduce the
# tests'. GPTQ (Frantar et al. 2022): per layer the Hessian H = XᵀX of the calibration inputs; the
# weights are quantized one input row at a time and each row's error is spread over the rows not
# yet quantized through the Cholesky factor of H⁻¹; --act-order quantizes rows by decreasing
# H diagonal with block scales fixed up front (so blocks stay contiguous, as MatMulNBits needs).
# A measurement, not part of the library (numpy and onnxruntime, references only).
#   python bench/gptq/gptq.py --dir /tmp/gptq --model shapes-sd-unet-blue --calib shapes-sd-unet-red --act-order
import argparse, json
import numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument('--dir', default='/tmp/gptq')
ap.add_argument('--model', required=True, help='a graph dump.ts wrote (judged on its own feeds)')
ap.add_argument('--calib', default='random', help="'same' (the judged feeds), 'random' (5 calls of noise with the feeds' statistics) or another dump's name (its feeds)")
ap.add_argument('--block', type=int, default=32)
ap.add_argument('--zero-points', action='store_true')
ap.add_argument('--act-order', action='store_true')
ap.add_argument('--sequential', action='store_true', help='each layer calibrated on the inputs of the graph with the layers before it quantized')
ap.add_argument('--damp', type=float, default=0.01)
a = ap.parse_args()

def load_feeds(name):
    meta = json.load(open(f'{a.dir}/{name}.json'))
    return meta, {k: np.array(v['data'], np.float32).reshape(v['dims']) for k, v in meta['feeds'].items()}

meta, feeds = load_feeds(a.model)
targets = meta['targets']
inputs = list(dict.fromkeys(t['input'] for t in targets))
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL

def load():
    return onnx.load(f'{a.dir}/{a.model}.onnx')

def run(m, fd, outs):
    return ort.InferenceSession(m.SerializeToString(), so, providers=['CPUExecutionProvider']).run(outs, fd)

if a.calib == 'same':
    calls = [feeds]
elif a.calib == 'random':
    rng = np.random.default_rng(1)
    calls = [{k: (np.full_like(v, t) if k == 'timestep' else v if k in ('img_ids', 'txt_ids', 'guidance') else (rng.standard_normal(v.shape) * v.std() + v.mean()).astype(np.float32)) for k, v in feeds.items()} for t in (101, 301, 501, 701, 901)]
else:
    calls = [load_feeds(a.calib)[1]]

LEVELS = 15
MID = 8

def fit(w):
    """per column of a [block, N] slice: (scale, zero point) with the least squared error over range shrink factors"""
    lo = np.minimum(w.min(0), 0); hi = np.maximum(w.max(0), 0)
    best_s = np.ones(w.shape[1]); best_z = np.full(w.shape[1], float(MID)); best_e = np.full(w.shape[1], np.inf)
    for f in np.arange(1, 0.4999, -0.025):
        if a.zero_points:
            s = (hi - lo) * f / LEVELS; s[s == 0] = 1
            z = np.clip(np.round(-lo * f / s), 0, LEVELS)
        else:
            amax = np.maximum(-lo, hi) * f
            s = np.where(-lo >= hi, amax / MID, amax / (MID - 1)); s[s == 0] = 1
            z = np.full(w.shape[1], float(MID))
        e = ((w - quant(w, s, z)) ** 2).sum(0)
        b = e < best_e; best_e[b] = e[b]; best_s[b] = s[b]; best_z[b] = z[b]
    return best_s, best_z

def quant(w, s, z):
    return (np.clip(np.round(w / s) + z, 0, LEVELS) - z) * s

def rtn(W):
    Q = np.empty_like(W)
    for k0 in range(0, W.shape[0], a.block):
        Q[k0:k0 + a.block] = quant(W[k0:k0 + a.block], *fit(W[k0:k0 + a.block]))
    return Q

def gptq(W, H):
    W = W.copy(); K = W.shape[0]; H = H.copy()
    dead = np.diag(H) == 0; H[dead, dead] = 1; W[dead] = 0
    H += a.damp * np.mean(np.diag(H)) * np.eye(K)
    fixed = {k0: fit(W[k0:k0 + a.block]) for k0 in range(0, K, a.block)} if a.act_order else None
    perm = np.argsort(-np.diag(H)) if a.act_order else np.arange(K)
    W = W[perm]; H = H[perm][:, perm]
    U = np.linalg.cholesky(np.linalg.inv(H)).T
    Q = np.zeros_like(W); sz = None
    for i in range(K):
        k = perm[i]
        if a.act_order: sz = fixed[k - k % a.block]
        elif k % a.block == 0: sz = fit(W[i:i + a.block])
        Q[i] = quant(W[i], *sz)
        W[i + 1:] -= np.outer(U[i, i + 1:], (W[i] - Q[i]) / U[i, i])
    out = np.empty_like(Q); out[perm] = Q
    return out

def gram(m, names):
    probe = onnx.ModelProto(); probe.CopyFrom(m)
    for n in names: probe.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    H = {n: 0 for n in names}
    for f in calls:
        for n, x in zip(names, run(probe, f, names)):
            x = x.reshape(-1, x.shape[-1]).astype(np.float64); H[n] = H[n] + x.T @ x
    return H

def quantize(m, method):
    init = {i.name: i for i in m.graph.initializer}
    H = gram(m, inputs) if method == 'gptq' and not a.sequential else None
    for inp in inputs:
        if method == 'gptq' and a.sequential: H = gram(m, [inp])
        for t in (t for t in targets if t['input'] == inp):
            W = numpy_helper.to_array(init[t['weight']]).astype(np.float64)
            Q = rtn(W) if method == 'rtn' else gptq(W, H[inp])
            init[t['weight']].CopyFrom(numpy_helper.from_array(Q.astype(np.float32), t['weight']))
    return m

ref = run(load(), feeds, [meta['output']])[0]
for method in ('rtn', 'gptq'):
    out = run(quantize(load(), method), feeds, [meta['output']])[0]
    print(f"{a.model} {method} (block {a.block}{', zero points' if a.zero_points else ''}{', act-order' if a.act_order and method == 'gptq' else ''}{', sequential' if a.sequential and method == 'gptq' else ''}; calibrated on {a.calib}): relL2 {np.linalg.norm(out - ref) / np.linalg.norm(ref):.3e}")
