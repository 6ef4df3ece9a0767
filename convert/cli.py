"""`agegate convert`, `agegate eval`, `agegate qa`."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from agegate.edge.contracts import MODEL_FILE
from agegate.edge.metadata import TTA_MODES
from agegate.train.cli_options import format_option, split_file_option

from .tflite import QUANT_MODES

_data_opts = [
    format_option,
    split_file_option,
    click.option("--limit", type=int, help="Evaluate a seeded random subset of N images (quick looks)."),
]


def data_options(f):
    for opt in reversed(_data_opts):
        f = opt(f)
    return f


@click.command()
@click.argument("model_dir", type=click.Path(exists=True))
@click.option("--quant", type=click.Choice(QUANT_MODES), default="int8", show_default=True)
@click.option("--io", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="int8 model input/output tensors (int8 only); float32 keeps the box code simple.")
@click.option("--calibration", "calib_data", type=click.Path(exists=True), help="Data set for int8 calibration.")
@click.option("--calibration-split", default="train", show_default=True)
@click.option("--calibration-size", type=int, default=500, show_default=True)
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning first (needs --data); implies int8.")
@click.option("--data", "qat_data", type=click.Path(exists=True), help="Training data for --qat.")
@click.option("--epochs", type=int, default=1, show_default=True, help="QAT epochs.")
@click.option("--qat-lr", type=float, default=2e-5, show_default=True)
@click.option("--qat-limit", type=int, help="QAT on at most N training images.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--tta", type=click.Choice(list(TTA_MODES)),
              help="Test-time augmentation written into the metadata, so eval, QA and the box all use it: "
                   "mirror averages each face with its mirror image (two model runs). Default: the run's own.")
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .tflite (metadata: .json beside).")
def convert(model_dir, quant, io, calib_data, calibration_split, calibration_size, qat, qat_data, epochs, qat_lr,
            qat_limit, batch_size, tta, fmt, split_file, limit, out):
    """Convert a trained run (MODEL_DIR with model.keras + model.json) to TFLite.

    \b
    Examples:
      agegate convert runs/m --quant float16 --out m-f16.tflite
      agegate convert runs/m --quant int8 --calibration DATA --out m-int8.tflite
      agegate convert runs/m --qat --data DATA --epochs 1 --calibration DATA --out m-qat.tflite
    """
    from agegate.edge.errors import UsageError

    from .evaluate import select_records
    from .tflite import calibration_images, convert_keras, load_keras_model

    out_path = Path(out)
    if out_path.suffix != ".tflite":
        raise UsageError("--out must end in .tflite")
    model, meta = load_keras_model(model_dir)
    if tta:
        meta = dataclasses.replace(meta, tta=tta)
    source = Path(model_dir) / MODEL_FILE if Path(model_dir).is_dir() else Path(model_dir)
    if qat:
        from .qat import qat_finetune

        if not qat_data:
            raise UsageError("--qat needs --data (training images for the fine-tuning)")
        quant = "int8"
        recs = select_records(qat_data, fmt, split_file, "train", qat_limit)
        model = qat_finetune(model, meta, recs, epochs=epochs, batch_size=batch_size, lr=qat_lr, echo=click.echo)
    calib = None
    if quant == "int8":
        src = calib_data or qat_data
        if not src:
            raise UsageError("--quant int8 needs --calibration DATA (images drawn from --calibration-split)")
        recs = select_records(src, fmt, split_file, calibration_split)
        calib = calibration_images(recs, meta.preprocess, calibration_size)
        click.echo(f"calibration: {len(calib)} images from split '{calibration_split}' of {src}")
    result = convert_keras(model, meta, quant, out_path, io=io, calibration=calib, source_path=source, qat=qat)
    click.echo(result.summary())
    if meta.tta != "none":
        click.echo(f"test-time augmentation: {meta.tta} (each prediction runs the model "
                   f"{meta.runs_per_prediction} times)")


@click.command("eval")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="A run folder / model.keras, or a .tflite with its .json.")
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat for a cross-dataset table (one row per set, plus overall).")
@data_options
@click.option("--split", default="test", show_default=True,
              help="train | val | test | all; a set with no split at all is evaluated whole (and says so).")
@click.option("--detect", is_flag=True, help="Run the box's face detector and crop first (un-cropped photos). "
              "Always on for a model trained with --crop box (its metadata says so).")
@click.option("--detector", type=click.Choice(["blazeface-short", "blazeface-full", "haar"]),
              default="blazeface-short", show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT threads.")
@click.option("--predictions", type=click.Path(dir_okay=False),
              help="Write one CSV row per image (skipped images too, with the reason).")
@click.option("--curve", type=click.Path(dir_okay=False),
              help="Distribution models: write the Challenge-25 trade-off (minors ok vs 25+ asked) as a PNG.")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(model_path, data, fmt, split_file, limit, split, detect, detector, threads, predictions, curve, as_json):
    """MAE, RMSE, CS5, bias, per-band figures and Challenge-25 rates of a model on a split.

    \b
    Several --data give one table per set and an overall row (the top-level JSON keys are the
    overall figures; "sets" holds each set's):
      agegate eval --model m.tflite --data ../shared/datasets/utkface --data ../shared/datasets/aaf
    """
    from .evaluate import Predictions, evaluate_sets, model_metadata

    if len(data) > 1 and split_file:
        from agegate.edge.errors import UsageError

        raise UsageError("--split-file applies to one --data set; each set brings its own split")
    sets = evaluate_sets(model_path, list(data), fmt, split_file, split, limit, threads=threads, detect=detect,
                         detector=detector, progress=not as_json and sys.stderr.isatty())
    overall = Predictions.concat([s.predictions for s in sets]) if len(sets) > 1 else sets[0].predictions
    detected = detect or model_metadata(model_path).preprocess.face_crop == "box"
    m = overall.metrics()
    m.update(model=str(model_path), split=split, detect=detected, sets=[s.to_dict() for s in sets])
    if predictions:
        overall.write_csv(Path(predictions))
    if curve:
        if overall.probs is None:
            from agegate.edge.errors import UsageError

            raise UsageError("--curve needs a distribution model (train --head distribution); this one gives one age")
        from .calibrate import plot_tradeoff

        here = m.get("operating_point")
        marks = [("operating point on this data", here["adults_asked"], here["minors_ok"])] if here else []
        plot_tradeoff(Path(curve), m["risk_curve"], [], overall.operating_point, marks)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    from .report_text import eval_tables

    click.echo(eval_tables(str(model_path), split, detected, [(s.name, s.split, s.predictions.metrics()) for s in sets],
                           m if len(sets) > 1 else None))


@click.command()
@click.option("--float", "float_model", required=True, type=click.Path(exists=True),
              help="The float parent: run folder, model.keras, or float32 .tflite.")
@click.option("--quantized", required=True, type=click.Path(exists=True), help="The quantized .tflite.")
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat to require MAE < --max-mae on every set (per population).")
@data_options
@click.option("--split", default="test", show_default=True)
@click.option("--max-mae", type=float, default=8.0, show_default=True)
@click.option("--max-drift", type=float, default=0.5, show_default=True)
@click.option("--max-flips", type=float, default=0.02, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--debug-layers", is_flag=True, help="Run TFLite's quantization debugger (needs a Keras --float).")
@click.option("--out", default="qa", show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def qa(float_model, quantized, data, fmt, split_file, limit, split, max_mae, max_drift, max_flips, threads,
       debug_layers, out, as_json):
    """Gate a quantized model against its float parent. Exit 0 only if every gate passes."""
    from agegate.edge.errors import UsageError

    from .evaluate import Predictions, evaluate_sets, is_tflite, model_metadata, select_records
    from .qa import Gates, check_float_parent, compare
    from .qa_report import write_report

    tta = {model_metadata(m).tta for m in (float_model, quantized)}
    if len(tta) > 1:  # a gate between two different predictors would measure the augmentation, not quantization
        raise UsageError(f"--float and --quantized use different test-time augmentation ({' vs '.join(sorted(tta))}); "
                         f"convert both with the same --tta")
    check_float_parent(float_model, quantized)
    prog = not as_json and sys.stderr.isatty()
    fsets = evaluate_sets(float_model, list(data), fmt, split_file, split, limit, threads=threads, progress=prog)
    qsets = evaluate_sets(quantized, list(data), fmt, split_file, split, limit, threads=threads, progress=prog)
    fp = Predictions.concat([s.predictions for s in fsets])
    qp = Predictions.concat([s.predictions for s in qsets])
    per_set = {s.name: s.predictions for s in qsets} if len(qsets) > 1 else {}
    rep = compare(fp, qp, Gates(max_mae, max_drift, max_flips), str(float_model), str(quantized), per_set)
    layers = None
    if debug_layers:
        if is_tflite(float_model):
            raise UsageError("--debug-layers needs the Keras float model (a run folder), not a .tflite")
        from .qa import debug_layers as run_debugger
        from .tflite import calibration_images, load_keras_model

        km, meta = load_keras_model(float_model)
        recs = select_records(data[0], fmt, split_file, split, limit, whole_if_unsplit=True)
        layers = run_debugger(km, calibration_images(recs, meta.preprocess, 64))
    write_report(rep, fp, qp, Path(out), layers)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        click.echo(f"float MAE {rep.float_metrics['mae']:.3f}, quantized MAE {rep.quantized_metrics['mae']:.3f}, "
                   f"drift {rep.comparison['drift']:+.3f}, p95 |diff| {rep.comparison['p95_abs_diff']:.3f}, "
                   f"flips {rep.comparison['decision_flip_rate']:.2%} on {rep.n} images")
        for g in rep.gates:
            click.echo(f"  {'pass' if g.passed else 'FAIL'}  {g.name}: {g.value} (limit {g.limit})")
        for l in layers or []:
            click.echo(f"  layer {l['layer']} ({l['op']}): rmse/scale {l['rmse_over_scale']}")
        click.echo(f"{'PASS' if rep.passed else 'FAIL'}: report in {Path(out) / 'report.html'}")
    sys.exit(0 if rep.passed else 1)
