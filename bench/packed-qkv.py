# Whether onnxruntime's CPU MultiHeadAttention takes packed QKV ([B, S, N, 3, H] as its only input)
# beside separate q, k, v: onnxruntime 1.30 answers 'Packed QKV of shape (B, L, N, 3, H) not
# implemented for CPU', which is why ortCompile has no packed-QKV fusion (README, ortCompile).
# Python with onnxruntime, a reference only:
#   python bench/packed-qkv.py
import numpy as np, onnx, onnxruntime as ort, time
from onnx import helper, TensorProto
B, S, N, H = 1, 1024, 8, 64
D = N * H
def model(packed):
    if packed:
        ins = [helper.make_tensor_value_info('qkv', TensorProto.FLOAT, [B, S, N, 3, H])]
        n = helper.make_node('MultiHeadAttention', ['qkv'], ['y'], domain='com.microsoft', num_heads=N)
    else:
        ins = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [B, S, D]) for x in 'qkv']
        n = helper.make_node('MultiHeadAttention', ['q', 'k', 'v'], ['y'], domain='com.microsoft', num_heads=N)
    g = helper.make_graph([n], 'g', ins, [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.microsoft', 1)]); m.ir_version = 8
    return m
so = ort.SessionOptions(); so.intra_op_num_threads = 1
x = np.random.randn(B, S, N, 3, H).astype(np.float32)
feeds = {'packed': {'qkv': x}, 'split': {k: np.ascontiguousarray(x[:, :, :, i, :]).reshape(B, S, D) for i, k in enumerate('qkv')}}
outs = {}
for name in ['split', 'packed']:
    try:
        s = ort.InferenceSession(model(name == 'packed').SerializeToString(), so, providers=['CPUExecutionProvider'])
        outs[name] = s.run(None, feeds[name])[0]
        t = time.perf_counter()
        for _ in range(10): s.run(None, feeds[name])
        print(name, f'{(time.perf_counter() - t) / 10 * 1e3:.1f} ms')
    except Exception as e:
        print(name, 'failed:', str(e)[:300])
if len(outs) == 2: print('max diff', np.abs(outs['split'] - outs['packed']).max())
