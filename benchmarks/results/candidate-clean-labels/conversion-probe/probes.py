"""Two conversions of the clean-labels candidate that are not candidates, to say where its int8 flips come from
(rule-v2.5-conversion.md, "Outcome"). Run from a scratch folder after three-seeds.sh:

    python probes.py int16x8      # x16.tflite: int16 activations, int8 weights (TFLite 16x8); then latency.py
    python probes.py float-head   # fl3-fc.tflite: three float layers plus the head's FULLY_CONNECTED in float;
                                  # then its .json given the calibrated head and point, and agegate qa --split val
                                  # (val-soup4-clean-fl3-float-head-qa.json)
"""
import dataclasses
import sys
from pathlib import Path

from agegate.convert import mixed_int8 as mi
from agegate.convert.evaluate import select_records
from agegate.convert.feature_output import with_feature_output
from agegate.convert.tflite import calibration_images, load_keras_model
from agegate.edge.metadata import read_metadata, write_metadata
from agegate.train.tfenv import import_tf

RUN = "/work/c39/runs/soup4-clean"  # three-seeds.sh's float parent
FL3 = Path("/work/c39/conv/fl3.tflite")  # its three-float-layer file (conversion-probe-val.md): metadata source
D = "/work/shared/datasets"


def parent_and_calibration():
    """The float parent and the 1,000 calibration images every conversion of it used (both train splits)."""
    model, meta = load_keras_model(RUN)
    recs = [r for s in (f"{D}/utkface", f"{D}/aaf") for r in select_records(s, "auto", None, "train")]
    return model, calibration_images(recs, meta.preprocess, 1000)


def write(blob: bytes, out: Path, quantization: str) -> None:
    out.write_bytes(with_feature_output(blob))
    write_metadata(out, dataclasses.replace(read_metadata(FL3), quantization=quantization))
    print(out, round(out.stat().st_size / 1e6, 2), "MB")


def int16x8(tf) -> None:
    model, calib = parent_and_calibration()
    conv = mi.int8_converter(model, calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    write(conv.convert(), Path("x16.tflite"), "int16x8")


def float_head(tf) -> None:
    model, calib = parent_and_calibration()
    dbg = mi._debugger(tf, model, calib, mi.RANK_IMAGES)
    ranked = mi._ranked(dbg, model)
    keep = [e for e in ranked if e.params <= mi.MAX_FLOAT_PARAMS][:3]
    head = [e for e in ranked if e.op == "FULLY_CONNECTED"]
    dbg.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=[e.tensor for e in keep + head])
    write(dbg.get_nondebug_quantized_model(), Path("fl3-fc.tflite"), "int8-mixed")


if __name__ == "__main__":
    tf, _ = import_tf()
    {"int16x8": int16x8, "float-head": float_head}[sys.argv[1]](tf)
