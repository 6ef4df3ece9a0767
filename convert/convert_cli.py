"""`agegate convert`: a trained run to TFLite (tflite.py, qat.py)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.metadata import TTA_MODES
from agegate.edge.preprocess import INPUT_SIZES
from agegate.train.cli_options import SPLIT_CHOICE, data_options

from .mixed_int8 import MAX_FLOAT_PARAMS
from .tflite import QUANT_MODES, refuse_over_calibrated


@click.command()
@click.argument("model_dir", type=click.Path(exists=True))
@click.option("--quant", type=click.Choice(QUANT_MODES), default="int8", show_default=True,
              help="float32 / float16: reference files; dynamic: int8 weights; int8: the box's (with --calibration).")
@click.option("--io", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="int8 model input/output tensors (int8 only); float32 keeps the box code simple.")
@click.option("--calibration", "calib_data", type=click.Path(exists=True), multiple=True,
              help="Data set for int8 calibration; repeat for several (the images are drawn from all of them, "
                   "so every population the model serves sets the activation ranges).")
@click.option("--calibration-split", type=SPLIT_CHOICE, default="train", show_default=True,
              help="Split the int8 calibration images are drawn from.")
@click.option("--calibration-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Images that set the int8 activation ranges (seeded draw over every --calibration set).")
@click.option("--float-layers", type=click.IntRange(min=0), default=0, show_default=True,
              help="int8: keep the N layers int8 hurts most (TFLite's quantization debugger on the calibration "
                   f"images) in float32, among those with at most {MAX_FLOAT_PARAMS:,} weights (a float weight "
                   "takes 4 bytes). MobileNetV2: 2 (its first convolution and depthwise) cut how far int8 "
                   "moves a face's estimate from its float parent by 1.6-3x and the ID-check flips to under 2 % "
                   "on two models (README). The file is then not integer-only (quantization: int8-mixed).")
@click.option("--qat", is_flag=True,
              help="Quantization-aware fine-tuning first (needs --data); implies int8. The fine-tune uses the "
                   "head's own loss and light augmentation, not the run's recipe (no 25-line term, no age "
                   "prior), so the file is a new model: evaluate and calibrate it, do not hold it to the "
                   "parent (one epoch on 3,000 images changed 3.9 % of a model's val decisions; MODEL_HISTORY.md).")
@click.option("--data", "qat_data", type=click.Path(exists=True), help="Training data for --qat.")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="QAT epochs.")
@click.option("--qat-lr", type=click.FloatRange(min=0, min_open=True), default=2e-5, show_default=True,
              help="QAT learning rate (a fine-tune: small).")
@click.option("--qat-limit", type=click.IntRange(min=1), help="QAT on at most N training images.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="QAT batch size.")
@click.option("--tta", type=click.Choice(list(TTA_MODES)),
              help="Test-time augmentation written into the metadata, so eval, QA and the box all use it: "
                   "mirror averages each face with its mirror image (two model runs). Default: the run's own.")
@click.option("--tta-size", "tta_sizes", type=click.IntRange(*INPUT_SIZES), multiple=True,
              help="Also run the model at this input size (its input resized; the same weights) and average the "
                   "views; repeat for several. v2.3 at 112 with 128: val MAE -0.07, a sixth fewer adults asked "
                   "per image at 1 % of minors, as many at its per-buyer point (MODEL_HISTORY.md). Each size costs "
                   "runs: check `agegate bench`. Default: the run's own.")
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .tflite (metadata: .json beside).")
@click.option("--force", is_flag=True, help="Convert over an --out that `agegate calibrate` has given an operating "
              "point (its calibration is lost).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (progress lines go to stderr).")
def convert(model_dir, quant, io, calib_data, calibration_split, calibration_size, float_layers, qat, qat_data, epochs,
            qat_lr, qat_limit, batch_size, tta, tta_sizes, fmt, split_file, limit, out, force, as_json):
    """Convert a trained run (MODEL_DIR with model.keras + model.json) to TFLite.

    \b
    Examples:
      agegate convert runs/m --quant float16 --out m-f16.tflite
      agegate convert runs/m --quant int8 --calibration DATA --out m-int8.tflite
      agegate convert runs/m --calibration UTK --calibration AAF --float-layers 2 --out m.tflite
      agegate convert runs/m --qat --data DATA --epochs 1 --calibration DATA --out m-qat.tflite
      agegate convert runs/m --calibration DATA --tta mirror --tta-size 128 --out m-2sizes.tflite
    """
    from agegate.edge.errors import UsageError
    from agegate.train.datasets import check_distinct

    from .evaluate import select_records
    from .tflite import calibration_images, convert_keras, load_keras_model

    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo  # noqa: E731
    out_path = Path(out)
    if out_path.suffix != ".tflite":
        raise UsageError("--out must end in .tflite")
    if not force:
        refuse_over_calibrated(out_path)
    model, meta = load_keras_model(model_dir)
    if tta:
        meta = dataclasses.replace(meta, tta=tta)
    if tta_sizes:
        meta = dataclasses.replace(meta, tta_sizes=tuple(tta_sizes))
    source = Path(model_dir) / MODEL_FILE if Path(model_dir).is_dir() else Path(model_dir)
    if qat:
        from .qat import qat_finetune

        if not qat_data:
            raise UsageError("--qat needs --data (training images for the fine-tuning)")
        quant = "int8"
        recs = select_records(qat_data, fmt, split_file, "train", qat_limit)
        model = qat_finetune(model, meta, recs, epochs=epochs, batch_size=batch_size, lr=qat_lr, echo=say)
    calib = None
    if quant == "int8":
        srcs = list(calib_data) or ([qat_data] if qat_data else [])
        if not srcs:
            raise UsageError("--quant int8 needs --calibration DATA (images drawn from --calibration-split)")
        check_distinct(srcs)
        recs, whole = [], []
        for src in srcs:
            got = select_records(src, fmt, split_file, calibration_split, whole_if_unsplit=True)
            recs += got
            if not any(r.split == calibration_split for r in got):
                whole.append(src)
        calib = calibration_images(recs, meta.preprocess, calibration_size)
        with_split = [src for src in srcs if src not in whole]
        drawn = ([f"split '{calibration_split}' of {', '.join(with_split)}"] if with_split else []) + (
            [f"all of {', '.join(whole)} (no splits)"] if whole else [])
        say(f"calibration: {len(calib)} images drawn from {' and '.join(drawn)}")
    result = convert_keras(model, meta, quant, out_path, io=io, calibration=calib, source_path=source, qat=qat,
                           float_layers=float_layers)
    if meta.tta_sizes:
        from agegate.edge.runtime import AgeModel

        AgeModel(out_path)  # the runtime must take every --tta-size before the file is handed on
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_json(), "calibration_images": None if calib is None else len(calib),
                               "tta": meta.tta, "tta_sizes": list(meta.tta_sizes),
                               "runs_per_prediction": meta.runs_per_prediction}, indent=2))
        return
    click.echo(result.summary())
    if meta.runs_per_prediction > 1:
        click.echo(f"test-time augmentation: {meta.views} (each prediction runs the model "
                   f"{meta.runs_per_prediction} times)")
