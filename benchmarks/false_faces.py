"""Faces the box's camera detector reports on a till with nobody there.

A face the detector reports on an empty till becomes a track, and a track with enough good frames becomes a
decision nobody asked for (and a count in the store's analytics). Every setting that finds more far faces
(a lower score, a second look) is also a chance to find a face that is not there, so it is measured here
before it ships. The frames are what is left of people when their faces are painted out: drawn photos of the
split with every face the photo profile finds painted over, 4-7 of them pasted at 160-560 px on a plain noisy
1280x960 scene and the scene shrunk to the camera's 640x480 (hair, clothes, hands, rooms at 80-280 px,
the sizes of a far buyer). Each variant is the camera profile (`DetectorOptions()`) with one setting changed;
reported per variant: frames with a face reported, and faces in all. Seeded: the same frames for every variant.

    python -m agegate.benchmarks.false_faces --data ../shared/datasets/utkface --data ../shared/datasets/aaf \\
        --split val --scenes 400 --small-face-score 0.35 --min-score 0.35 \\
        --out benchmarks/results/far-camera/false-faces-val.json
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import click
import numpy as np

from agegate.convert.evaluate import read_splits
from agegate.edge.config import bounds
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.runtime import runtime_version
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment
from .uncropped_probe import count_false_faces

FRAME = (640, 480)  # the till camera's frame (width, height)
BOX = "the box (camera profile)"


def _scores(text: str, name: str, key: str) -> list[float]:
    """Comma-separated values of the detector's `key`, each in the range box.toml allows for it."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of scores", param_hint=name) from None
    lo, hi = bounds("detector", key)
    if any(not lo <= v <= hi for v in values):
        raise click.BadParameter(f"{text!r}: every score must lie in {lo:g}-{hi:g}", param_hint=name)
    return values


def variants(small_face_scores: list[float], min_scores: list[float]) -> dict[str, DetectorOptions]:
    """The camera profile, and the same with one detector score changed per variant."""
    box = DetectorOptions()
    out = {BOX: box}
    out.update({f"small_face_score {v:g}": replace(box, small_face_score=v) for v in small_face_scores})
    out.update({f"min_score {v:g}": replace(box, min_score=v) for v in min_scores})
    return out


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True),
              help="Data sets whose photos, faces painted out, make the empty frames.")
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True)
@click.option("--per-set", type=click.IntRange(min=1), default=200, show_default=True,
              help="Photos drawn (seeded) from each set; 60 of them are painted and pasted.")
@click.option("--scenes", type=click.IntRange(min=1), default=400, show_default=True, help="Empty frames.")
@click.option("--small-face-score", "small_face_scores", default="", help="Comma-separated scores: one variant each "
              "with detector.small_face_score changed.")
@click.option("--min-score", "min_scores", default="", help="Comma-separated scores: one variant each with "
              "detector.min_score changed.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(data: tuple[str, ...], split: str, per_set: int, scenes: int, small_face_scores: str, min_scores: str,
         seed: int, out: str | None) -> None:
    named = variants(_scores(small_face_scores, "--small-face-score", "small_face_score"),
                     _scores(min_scores, "--min-score", "min_score"))
    rng = np.random.default_rng(seed)
    drawn = []  # (set name, record), as uncropped_probe draws them
    for s in read_splits(list(data), "auto", None, split):
        take = rng.choice(len(s.records), min(per_set, len(s.records)), replace=False)
        drawn += [(s.name, s.records[i]) for i in sorted(take)]
    detectors = {name: FaceDetector(o) for name, o in named.items()}
    counts = count_false_faces(drawn, detectors, scenes, seed, frame=FRAME)
    for name in named:
        click.echo(f"{name:28s} {counts['with_a_face'][name]:4d} of {scenes} empty frames with a face "
                   f"({counts['faces'][name]} faces)")
    if out:
        result = {"kind": "false_faces", "data": list(data), "split": split, "per_set": per_set, "seed": seed,
                  "frame": list(FRAME), **counts,
                  "variants": {name: asdict(o) for name, o in named.items()},
                  "environment": environment("litert", runtime_version("litert"), "xnnpack")}
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
