"""Scratch diagnostic: fl3 plus the head's FULLY_CONNECTED kept float (its logits not rounded to int8)."""
# Run from a scratch folder after three-seeds.sh; writes fl3-fc.tflite there; then its .json given the calibrated head and point, and agegate qa --split val (val-soup4-clean-fl3-float-head-qa.json).
import dataclasses, json, sys
from pathlib import Path
from agegate.convert.tflite import load_keras_model, calibration_images
from agegate.convert.evaluate import select_records
from agegate.convert.feature_output import with_feature_output
from agegate.convert import mixed_int8 as mi
from agegate.edge.metadata import write_metadata, read_metadata
from agegate.train.tfenv import import_tf
tf,_=import_tf()
D='/work/shared/datasets'
model, meta = load_keras_model('/work/c39/runs/soup4-clean')
recs=[]
for s in (f'{D}/utkface', f'{D}/aaf'):
    recs += select_records(s, 'auto', None, 'train')
calib = calibration_images(recs, meta.preprocess, 1000)
dbg = mi._debugger(tf, model, calib, 64)
ranked = mi._ranked(dbg, model)
keep = [e for e in ranked if e.params <= mi.MAX_FLOAT_PARAMS][:3]
fc = [e for e in ranked if e.op == 'FULLY_CONNECTED']
print('FC', [(e.tensor, e.steps, e.params) for e in fc])
for name, extra in (('fc', fc), ):
    dbg.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[e.tensor for e in keep + extra])
    blob = with_feature_output(dbg.get_nondebug_quantized_model())
    out = Path(f'fl3-{name}.tflite'); out.write_bytes(blob)
    src = read_metadata(Path('/work/c39/conv/fl3.tflite'))
    write_metadata(out, dataclasses.replace(src, quantization='int8-mixed'))
    print(name, out.stat().st_size/1e6)
