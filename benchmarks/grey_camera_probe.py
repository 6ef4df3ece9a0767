"""What a monochrome camera costs: the same photos in colour and in grey, through the box's detector and model.

A till camera in night mode (infrared), or a monochrome one, gives grey frames. The age model saw greyscale among
its till augmentations (`--augment till`), but the face detector and the calibrated risk were never measured on
grey frames. Each photo of the split is read as it is, and again turned grey (one luminance channel copied into
three, as a monochrome camera's frames arrive); both go through `agegate eval`'s path (the photo detector profile,
the box's crop, the model). Per set and view: faces found, MAE, bias, the 80 % interval's coverage, and at the
model's operating point the minors decided ok and the 25+ asked for ID, per image (per buyer: `agegate replay
--grey`). Val only: it says whether grey frames need their own measurement before a store turns night mode on.

    python -m agegate.benchmarks.grey_camera_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val \\
        --out benchmarks/results/grey-camera/probe-val.json
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import click
import cv2

from agegate.convert.evaluate import Predictions, predict, select_records
from agegate.convert.replay import monochrome
from agegate.edge.preprocess import decode_image
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment


def grey_copies(records, folder: Path) -> list:
    """The records with each image written grey under `folder` (PNG: no second JPEG loss on top of the grey)."""
    out = []
    for i, rec in enumerate(records):
        path = folder / f"{i:06d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(monochrome(decode_image(rec.path)), cv2.COLOR_RGB2BGR))
        out.append(dataclasses.replace(rec, path=path))
    return out


def figures(p: Predictions, n: int) -> dict:
    """What the probe reports of one set in one view: `agegate eval`'s own figures (`Predictions.metrics`)."""
    m = p.metrics()
    row = {"n": n, "faces_found": len(p.y_true), "mae": m["mae"], "bias": m["bias"]}
    if "calibration" in m:
        row["coverage_80"] = m["calibration"]["all"]["coverage_80"]
    if "operating_point" in m:
        op = m["operating_point"]
        row.update({k: op[k] for k in ("max_risk", "minors_ok", "n_minors", "adults_asked", "n_adults")})
    return row


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="A seeded random subset of N images per set.")
@click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(model: str, data: tuple[str, ...], split: str, limit: int | None, threads: int, out: str | None) -> None:
    rows: dict[str, dict] = {}
    for d in data:
        records = select_records(d, "auto", None, split, limit)
        name = Path(d).name
        with tempfile.TemporaryDirectory(prefix="agegate-grey-") as tmp:
            views = {"colour": records, "grey": grey_copies(records, Path(tmp))}
            rows[name] = {view: figures(predict(model, recs, threads=threads, detect=True, desc=f"{name} {view}"),
                                        len(recs)) for view, recs in views.items()}
        for view, r in rows[name].items():
            c25 = (f", minors ok {r['minors_ok']:.1%} of {r['n_minors']}, 25+ asked {r['adults_asked']:.1%} "
                   f"of {r['n_adults']}" if "minors_ok" in r else "")
            click.echo(f"{name:10s} {view:6s} faces {r['faces_found']}/{r['n']}, MAE {r['mae']:.2f}, bias "
                       f"{r['bias']:+.2f}" + (f", 80 % interval holds {r['coverage_80']:.1%}" if "coverage_80" in r
                                              else "") + c25)
    if out:
        Path(out).write_text(json.dumps({"model": model, "split": split, "data": list(data), "limit": limit,
                                         "sets": rows, "environment": environment()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
