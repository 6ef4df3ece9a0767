"""`agegate tta`: how a converted model runs at test time, changed without converting it again.

The .tflite's bytes are copied as they are; only its sidecar changes. Its outputs do change (more views are
averaged), so what was measured on the old views is dropped: the operating point, the QA verdict and the
bundle, and `agegate calibrate` must choose them again before the model ships.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import click

from agegate.edge.errors import UsageError
from agegate.edge.metadata import TTA_MODES, read_metadata, sha256_file, sidecar_path, write_metadata
from agegate.edge.preprocess import INPUT_SIZES


@click.command()
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--tta", "mode", type=click.Choice(list(TTA_MODES)), help="Mirror views (default: the model's own).")
@click.option("--size", "sizes", type=click.IntRange(*INPUT_SIZES), multiple=True,
              help="Also run the model at this input size (its input resized) and average; repeat for several. "
                   "No --size: at its own size only.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="The new .tflite (its .json sidecar is written beside it).")
@click.option("--force", is_flag=True, help="Write over an --out that `agegate calibrate` has given an operating "
              "point (its calibration is lost).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def tta(model_path, mode, sizes, out, force, as_json):
    """Copy a converted MODEL_PATH with other test-time views: mirror, and further input sizes.

    A convolutional model with global pooling takes faces at other sizes with the same weights, and the views
    err differently: v2.3 at 112 and 128 px together (mirror at each, four runs per face) erred less on val
    and asked 18.3 % of adults for ID at 1 % of minors passed per image, against 21.8 % at 112 alone, for one
    file's bytes; at its per-buyer operating point it asked as many as v2.3, so it did not ship
    (MODEL_HISTORY.md, "One file at two input sizes"). A model with further sizes is written as metadata
    format 2, which boxes on an agegate before it refuse rather than run it at one size.

    The copy carries no operating point: calibrate it on val before anything ships.

    \b
    Example:
      agegate tta edge/assets/default_model.tflite --tta mirror --size 128 --out v2.4.tflite
      agegate calibrate v2.4.tflite --data ../shared/datasets/utkface --data ../shared/datasets/aaf
    """
    from agegate.edge.runtime import AgeModel

    from .tflite import refuse_over_calibrated

    src, dst = Path(model_path), Path(out)
    if src.suffix != ".tflite" or dst.suffix != ".tflite":
        raise UsageError(f"{src} -> {dst}: both must be .tflite files (a run folder takes `agegate convert --tta`)")
    if dst.resolve() == src.resolve():
        raise UsageError(f"--out {dst} is the model itself; write a new file, so the measured one stays as it was")
    if not force:
        refuse_over_calibrated(dst)
    meta = read_metadata(src)
    new = dataclasses.replace(
        meta, tta=mode or meta.tta, tta_sizes=tuple(sizes), operating_point=None, bundle=None, metrics={},
        created="", git_commit="",
        extra={**meta.extra, "tta_from": {"file": src.name, "sha256": sha256_file(src), "tta": meta.tta,
                                          "tta_sizes": list(meta.tta_sizes)}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tflite.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    write_metadata(dst, new)
    try:
        model = AgeModel(dst)  # the runtime must take every size before anything else reads the copy
    except Exception:
        dst.unlink(missing_ok=True)
        sidecar_path(dst).unlink(missing_ok=True)
        raise
    info = {"out": str(dst), "sidecar": str(sidecar_path(dst)), "tta": new.tta, "input_sizes": list(new.input_sizes),
            "runs_per_prediction": new.runs_per_prediction, "operating_point": None, "init_ms": round(model.init_ms, 1)}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{dst}: {new.views}, {new.runs_per_prediction} runs per face; no operating point: "
               f"`agegate calibrate {dst} --data ...` chooses one")
