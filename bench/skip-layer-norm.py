# A residual Add + LayerNormalization against onnxruntime's fused SkipLayerNormalization (with its
# fourth output, the sum the next residual reads), on CPU: the same values, and the median time of
# each. onnxruntime 1.30 ran the fused op 5.7-7.8x slower here (B, S, D = 2, 4096, 320 / 2, 1024,
# 640 / 2, 77, 768), which is why ortCompile does not emit it. Python with onnxruntime, a reference:
#   python bench/skip-layer-norm.py
import numpy as np, onnx, onnxruntime as ort, time
from onnx import helper, TensorProto, numpy_helper
B, S, D = 2, 4096, 320
GAM = np.random.rand(D).astype(np.float32); BET = np.random.rand(D).astype(np.float32)
def model(fused):
    g_ = numpy_helper.from_array(GAM, 'g'); b_ = numpy_helper.from_array(BET, 'b')
    ins = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [B, S, D]) for x in 'xy']
    if fused:
        nodes = [helper.make_node('SkipLayerNormalization', ['x', 'y', 'g', 'b'], ['o', '', '', 's'], domain='com.microsoft', epsilon=1e-5)]
    else:
        nodes = [helper.make_node('Add', ['x', 'y'], ['s']), helper.make_node('LayerNormalization', ['s', 'g', 'b'], ['o'], axis=-1, epsilon=1e-5)]
    outs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for x in ['o', 's']]
    m = helper.make_model(helper.make_graph(nodes, 'g', ins, outs, [g_, b_]), opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)]); m.ir_version = 8
    return m
so = ort.SessionOptions(); so.intra_op_num_threads = 1
f = {'x': np.random.randn(B, S, D).astype(np.float32), 'y': np.random.randn(B, S, D).astype(np.float32)}
ss = {k: ort.InferenceSession(model(k == 'fused').SerializeToString(), so, providers=['CPUExecutionProvider']) for k in ['unfused', 'fused']}
r = {k: s.run(None, f) for k, s in ss.items()}
print('max diff o', np.abs(r['fused'][0] - r['unfused'][0]).max(), 's', np.abs(r['fused'][1] - r['unfused'][1]).max())
t = {k: [] for k in ss}
for _ in range(40):
    for k, s in ss.items():
        a = time.perf_counter(); s.run(None, f); t[k].append(time.perf_counter() - a)
print({k: f'{np.median(v)*1e3:.2f} ms' for k, v in t.items()})
