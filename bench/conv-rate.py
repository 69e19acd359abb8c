# One float32 Conv's rate in onnxruntime's CPU provider (1 intra-op thread) by channels and size:
# what the VAE decoder's convolutions can reach at 1024x1024, against which its measured decode
# time is judged (README, "Memory"). Python with onnxruntime, a reference only:
#   python bench/conv-rate.py
import numpy as np, onnx, onnxruntime as ort, time, sys
from onnx import helper, TensorProto, numpy_helper
def model(c_in, c_out, k):
    w = numpy_helper.from_array((np.random.randn(c_out, c_in, k, k) * 0.05).astype(np.float32), 'w')
    n = helper.make_node('Conv', ['x', 'w'], ['y'], pads=[k // 2] * 4)
    g = helper.make_graph([n], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, c_in, None, None])], [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)]); m.ir_version = 8; return m
so = ort.SessionOptions(); so.intra_op_num_threads = 1
for c_in, c_out, k in [(256, 256, 3), (128, 128, 3), (512, 512, 3)]:
    s = ort.InferenceSession(model(c_in, c_out, k).SerializeToString(), so, providers=['CPUExecutionProvider'])
    for hw in [64, 128, 256, 512] + ([1024] if c_in <= 256 else []):
        x = np.random.randn(1, c_in, hw, hw).astype(np.float32)
        s.run(None, {'x': x})
        reps = max(1, int(2e10 // (2 * c_in * c_out * k * k * hw * hw)))
        t = time.perf_counter()
        for _ in range(reps): s.run(None, {'x': x})
        dt = (time.perf_counter() - t) / reps
        print(f'conv {c_in}->{c_out} k{k} {hw}x{hw}: {dt*1e3:.0f} ms, {2*c_in*c_out*k*k*hw*hw/dt/1e9:.0f} GFLOP/s', flush=True)
