"""`agegate recover`: a float run folder rebuilt from a converted .tflite (recover.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from agegate.train.cli_options import SPLIT_CHOICE, format_option, split_file_option


@click.command()
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "datas", type=click.Path(exists=True), multiple=True, required=True,
              help="Images for the BatchNorm statistics (repeat for several sets); the model's own crop policy "
                   "applies, so a box-crop model sees them through the box's detector.")
@click.option("--split", type=SPLIT_CHOICE, default="train", show_default=True,
              help="Split the images are drawn from (a set without splits gives all of it).")
@click.option("--images", type=click.IntRange(min=16), default=512, show_default=True,
              help="How many images measure the BatchNorm statistics.")
@format_option
@split_file_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def recover(tflite, datas, split, images, fmt, split_file, out, as_json):
    """Rebuild a trainable float model from a converted TFLITE whose training run is lost.

    The weights are read from the file (int8 ones dequantized with their own scales), BatchNorm folded into
    each convolution is restored with statistics measured on real images, and the result is an ordinary run
    folder (model.keras + model.json, marked recovered_from) that eval, convert and `train --weights` take.
    It computes the .tflite's function without the activation rounding; its weights keep the int8 rounding.

    \b
    Examples:
      agegate recover edge/assets/default_model.tflite --data UTK --data AAF --out runs/v2-recovered
      agegate convert runs/v2-recovered --calibration UTK --float-layers 2 --tta mirror --out v2-mixed.tflite
      agegate train --weights runs/v2-recovered/model.keras --head distribution ... --out runs/v2-ft
    """
    from agegate.train.checkpoints import check_new_run_folder
    from agegate.train.datasets import check_distinct

    from .evaluate import select_records
    from .recover import recover as run_recover

    check_new_run_folder(Path(out), "recover")  # before the data are read
    check_distinct(list(datas))
    records = []
    for data in datas:
        records += select_records(data, fmt, split_file, split, whole_if_unsplit=True)
    meta = run_recover(Path(tflite), records, Path(out), images)
    info = {"out": str(out), "backbone": meta.backbone, "input_size": meta.input_size, "head": meta.head.kind.value,
            "tta": meta.tta, **meta.extra["recovered_from"]}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{out}: {meta.backbone} {meta.input_size} px, {meta.head.kind.value} head, float, recovered from "
               f"{info['file']} ({info['quantization']}, sha256 {info['sha256'][:12]}); BatchNorm statistics from "
               f"{info['batchnorm_images']} images")
