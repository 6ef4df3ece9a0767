"""`agegate eval`: a model's figures on named splits of one or more data sets (evaluate.py, metrics.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from agegate.edge.cli_types import json_option, threads_option
from agegate.train.cli_options import SPLIT_CHOICE, data_options


@click.command("eval")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True),
              help="A run folder / model.keras, or a .tflite with its .json.")
@click.option("--data", required=True, multiple=True, type=click.Path(exists=True),
              help="Data set folder or CSV; repeat for a cross-dataset table (one row per set, plus overall).")
@data_options
@click.option("--split", type=SPLIT_CHOICE, default="test", show_default=True,
              help="train | val | test | all; a set with no split at all is evaluated whole (and says so).")
@click.option("--detect", is_flag=True, help="Run the box's face detector and crop first (un-cropped photos). "
              "Always on for a model trained with --crop box (its metadata says so).")
@click.option("--detector", type=click.Choice(["blazeface-short", "blazeface-full", "haar"]),
              default="blazeface-short", show_default=True, help="The face detector of --detect.")
@threads_option
@click.option("--predictions", type=click.Path(dir_okay=False),
              help="Write one CSV row per image (skipped images too, with the reason).")
@click.option("--curve", type=click.Path(dir_okay=False),
              help="Distribution models: write the Challenge-25 trade-off (minors ok vs 25+ asked) as a PNG.")
@click.option("--bands", "bands_png", type=click.Path(dir_okay=False),
              help="Write MAE and bias by age band as a PNG, a line per set, the |bias| target from 18 up shaded.")
@json_option
def eval_cmd(model_path, data, fmt, split_file, limit, split, detect, detector, threads, predictions, curve, bands_png,
             as_json):
    """MAE, RMSE, CS5, bias, per-band figures and Challenge-25 rates of a model on a split.

    \b
    Several --data give one table per set and an overall row (the top-level JSON keys are the
    overall figures; "sets" holds each set's):
      agegate eval --model m.tflite --data ../shared/datasets/utkface --data ../shared/datasets/aaf
    """
    from .evaluate import Predictions, evaluate_sets, model_metadata, read_splits

    if len(data) > 1 and split_file:
        from agegate.edge.errors import UsageError

        raise UsageError("--split-file applies to one --data set; each set brings its own split")
    meta = model_metadata(model_path)
    if curve:  # before the evaluation, not after
        from .calibrate import curve_needs_distribution

        curve_needs_distribution(meta)
    sets = evaluate_sets(model_path, read_splits(list(data), fmt, split_file, split, limit), threads=threads,
                         detect=detect, detector=detector)
    overall = Predictions.concat([s.predictions for s in sets]) if len(sets) > 1 else sets[0].predictions
    detected = detect or meta.preprocess.face_crop == "box"
    m = overall.metrics()
    m.update(model=str(model_path), split=split, detect=detected, sets=[s.to_dict() for s in sets])
    if predictions:
        overall.write_csv(Path(predictions))
    if curve:
        from .calibrate import plot_tradeoff

        here = m.get("operating_point")
        marks = [("operating point on this data", here["adults_asked"], here["minors_ok"])] if here else []
        plot_tradeoff(Path(curve), m["risk_curve"], [], overall.operating_point, marks)
    if bands_png:
        from .band_plot import plot_bands

        plot_bands(Path(bands_png), [(f"{s.name} [{s.split}]", d["bands"]) for s, d in zip(sets, m["sets"])])
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    from .report_text import eval_tables

    click.echo(eval_tables(str(model_path), split, detected, [(s.name, s.split, s.predictions.metrics()) for s in sets],
                           m if len(sets) > 1 else None))
