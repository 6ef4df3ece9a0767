"""Probe: the QAT model itself (fake quantization, Keras, inference mode) as the parent of its .tflite.
QAT as convert --qat does (1 epoch, 1,500 train images of each set), convert, then on every val image (box
crops, mirror): the share of decisions at the candidate's point (P(under 25) > 0.0987, temperature of the
calibrated file) that differ between the QAT Keras model and its .tflite, and how far a face moves.
Control: the same measure for the post-training three-float-layer file against its float parent (qa: 1.95 %)."""
import dataclasses, json, sys
from pathlib import Path
import numpy as np
from agegate.convert.tflite import load_keras_model, calibration_images, convert_keras
from agegate.convert.evaluate import select_records, ModelInputs
from agegate.convert.qat import qat_finetune
from agegate.edge.age_head import AgeHead, p_under
from agegate.edge.runtime import make_interpreter
from agegate.train.tfenv import import_tf
tf, keras = import_tf()
RUN = '/work/c39/runs/soup4-clean'; D = '/work/shared/datasets'
cal = json.load(open('/work/c39/soup4-clean-mixed.json'))
head = AgeHead.from_dict(cal['head']); point = cal['operating_point']['max_risk']
model, meta = load_keras_model(RUN)
meta = dataclasses.replace(meta, tta='mirror')

def val_inputs():
    inputs = ModelInputs(meta.preprocess)
    xs = []
    for s in (f'{D}/utkface', f'{D}/aaf'):
        for r in select_records(s, 'auto', None, 'val'):
            x = inputs(r).x
            if x is not None:
                xs.append(x)
    return np.stack(xs).astype(np.float32)

def keras_raw(m, x):
    f = lambda v: m.predict(v, batch_size=64, verbose=0)
    return 0.5 * (f(x) + f(x[:, :, ::-1]))

def tflite_raw(path, x):
    it, _ = make_interpreter(Path(path), threads=2)
    i, o = it.get_input_details()[0]['index'], it.get_output_details()[0]['index']
    def run(v):
        out = []
        for row in v:
            it.set_tensor(i, row[None]); it.invoke(); out.append(it.get_tensor(o)[0].copy())
        return np.stack(out)
    return 0.5 * (run(x) + run(x[:, :, ::-1]))

def compare(name, a, b):
    ra, rb = p_under(head.probabilities(a), head, 25), p_under(head.probabilities(b), head, 25)
    pa, pb = head.point(a), head.point(b)
    res = {'pair': name, 'n': len(a), 'decision_flips': round(float(np.mean((ra > point) != (rb > point))), 4),
           'mean_abs_diff_years': round(float(np.mean(np.abs(pa - pb))), 4)}
    print(json.dumps(res)); return res

x = val_inputs(); print('val faces', len(x))
out = [compare('post-training fl3 .tflite vs its float parent', keras_raw(model, x), tflite_raw('/work/c39/conv/fl3.tflite', x))]
recs = [r for s in (f'{D}/utkface', f'{D}/aaf') for r in select_records(s, 'auto', None, 'train', 1500)]
qmodel = qat_finetune(model, meta, recs, epochs=1, batch_size=64, lr=2e-5)
convert_keras(qmodel, meta, 'int8', Path('qat.tflite'), calibration=calibration_images(recs, meta.preprocess, 1000), qat=True)
out.append(compare('QAT .tflite vs the QAT model (fake quantization, inference mode)', keras_raw(qmodel, x), tflite_raw('qat.tflite', x)))
json.dump(out, open('fq-parent-val.json', 'w'), indent=2)
