import time, numpy as np, sys
# python latency.py A.tflite B.tflite ...: p50 of 200 invokes at 2 threads (XNNPACK), one random input; latency.txt: fl3, x16, fl3, x16.
from agegate.edge.runtime import make_interpreter
for p in sys.argv[1:]:
    it,_ = make_interpreter(p, threads=2)
    i=it.get_input_details()[0]; x=np.random.rand(*i['shape']).astype(np.float32)
    it.set_tensor(i['index'], x); it.invoke()
    ts=[]
    for _ in range(200):
        t=time.perf_counter(); it.set_tensor(i['index'], x); it.invoke(); ts.append(time.perf_counter()-t)
    print(p, 'p50 ms', round(np.median(ts)*1e3,3))
