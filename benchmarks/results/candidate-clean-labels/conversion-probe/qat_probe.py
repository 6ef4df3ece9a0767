"""Probe: does quantization-aware fine-tuning give a float parent that int8 moves less? (rule-v2.5-conversion.md)
Run from a scratch folder after three-seeds.sh: `python qat_probe.py 3000` QATs the clean-labels candidate (1 epoch,
`agegate convert --qat`'s fine-tune, 1,500 train images of each set), writes qat.tflite and, as qat-float/, the
QAT model's variables copied into the float model by name. Then `agegate qa --split val` of qat.tflite against
runs/soup4-clean (val-soup4-clean-qat-3000-qa.json) and against qat-float (…-own-float-qa.json). Those two ran
with tfmot's own starting ranges (convert/qat.py before commit 0cbd347); with each range started at the float
model's (init_activation_ranges, since): val-soup4-clean-qat-3000-ranges-qa.json, …-ranges-own-float-qa.json."""
import dataclasses, shutil, sys, time
from pathlib import Path
import numpy as np
from agegate.convert.tflite import load_keras_model, calibration_images, convert_keras
from agegate.convert.evaluate import select_records
from agegate.convert.qat import qat_finetune
from agegate.train.tfenv import import_tf
tf, keras = import_tf()
RUN = '/work/c39/runs/soup4-clean'; D = '/work/shared/datasets'
n = int(sys.argv[1])
model, meta = load_keras_model(RUN)
meta = dataclasses.replace(meta, tta='mirror')
recs = []
for s in (f'{D}/utkface', f'{D}/aaf'):
    recs += select_records(s, 'auto', None, 'train', n // 2)
t = time.time()
qmodel = qat_finetune(model, meta, recs, epochs=1, batch_size=64, lr=2e-5)
print('qat s', round(time.time() - t))
# (b) the QAT model's own float weights
fmodel, _ = load_keras_model(RUN)
qv = {}
for v in qmodel.weights:
    name = v.name.split('/', 1)[-1] if v.name.startswith('quant_') else v.name
    qv[name] = v
copied, missing = 0, []
for fw in fmodel.weights:
    if fw.name in qv:
        fw.assign(qv[fw.name].numpy()); copied += 1
    else:
        missing.append(fw.name)
print('missing', missing[:10], len(missing), 'of', len(fmodel.weights), 'q names', [v.name for v in qmodel.weights[:8]])
print('layers copied', copied)
out = Path('qat-float'); out.mkdir(exist_ok=True)
fmodel.save(str(out / 'model.keras'))
shutil.copy(f'{RUN}/model.json', out / 'model.json')
# (a) the int8 file of the QAT model
calib = calibration_images(recs, meta.preprocess, 1000)
print(convert_keras(qmodel, meta, 'int8', Path('qat.tflite'), calibration=calib, qat=True).summary())
