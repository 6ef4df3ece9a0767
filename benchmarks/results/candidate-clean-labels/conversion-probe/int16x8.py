"""Scratch: 16x8 (int16 activations, int8 weights) conversion of soup4-clean; latency vs fl3 at 2 threads."""
# Run from a scratch folder, after three-seeds.sh (its run folder is /work/c39/runs/soup4-clean); writes x16.tflite there.
import dataclasses, time, numpy as np
from pathlib import Path
from agegate.convert.tflite import load_keras_model, calibration_images
from agegate.convert.evaluate import select_records
from agegate.convert.feature_output import with_feature_output
from agegate.convert.mixed_int8 import int8_converter
from agegate.edge.metadata import write_metadata, read_metadata
from agegate.train.tfenv import import_tf
tf,_=import_tf()
D='/work/shared/datasets'
model, meta = load_keras_model('/work/c39/runs/soup4-clean')
recs=[]
for s in (f'{D}/utkface', f'{D}/aaf'):
    recs += select_records(s, 'auto', None, 'train')
calib = calibration_images(recs, meta.preprocess, 1000)
conv = int8_converter(model, calib)
conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
t=time.time(); blob = conv.convert(); print('convert s', time.time()-t)
blob = with_feature_output(blob)
out=Path('x16.tflite'); out.write_bytes(blob)
src = read_metadata(Path('/work/c39/conv/fl3.tflite'))
write_metadata(out, dataclasses.replace(src, quantization='int16x8', extra={**src.extra, 'float_layers': []}))
print('size MB', out.stat().st_size/1e6)
