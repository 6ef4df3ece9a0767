"""Does the photo path find and frame a face that is small in the photo? Data sets hold tight chips and
face photos; uncropped photos (a portrait, a half-body shot) show the same face small in a larger picture.
Each photo of the split is placed, shrunk so its longer side is `--sides` pixels, at a seeded random spot of
a 1280x960 scene (a muted colour with sensor noise), and goes through the photo detector profile, the
box's crop and the model, as `agegate eval` reads a model trained on box crops; side 0 is the photo as it is.

Per detector variant and side: MAE per set, faces not found, and boxes that differ from the one-pass box
(`--split all --per-set 100000 --sides 0`: what the refinement changes in the data sets as they are). The
variants are the photo profile as it was (one pass: short range on the whole frame, padded retry, Haar) and
with small faces detected again on a region around them (`edge.detect.DetectorOptions.for_photos`,
`refine_below`; the shipped share marked). The share is chosen on val; a test run reports what was chosen.

    python -m agegate.benchmarks.uncropped_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --per-set 400 \\
        --sides 0,640,480,360,300,220,160 --refine-below 0.3,0.45,0.6 \\
        --out benchmarks/results/uncropped-photos-val.json
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
import cv2
import numpy as np
from tqdm import tqdm

from agegate.convert.evaluate import read_splits
from agegate.convert.metrics import age_metrics
from agegate.edge.detect import REFINE_BELOW, DetectorOptions, FaceDetector, box_crop
from agegate.edge.errors import AgegateError
from agegate.edge.preprocess import decode_image
from agegate.edge.runtime import AgeModel

from .environment import environment

SCENE = (960, 1280)  # height, width
ONE_PASS = "one pass (before)"


def variants(refine_below: list[float]) -> dict[str, float]:
    """Variant name -> refine_below: one pass, then each share asked for (the shipped one marked)."""
    return {ONE_PASS: 0.0, **{f"refine below {t:g}" + (" (shipped)" if t == REFINE_BELOW else ""): t
                              for t in refine_below}}


def place_in_scene(rgb: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """`rgb` shrunk so its longer side is `side` px, pasted at a random spot of a plain, noisy scene."""
    h, w = SCENE
    scene = np.full((h, w, 3), rng.uniform(40, 200, 3), np.float32) + rng.normal(0, 8, (h, w, 3))
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    k = side / max(rgb.shape[:2])
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * k)), max(1, round(rgb.shape[0] * k))),
                       interpolation=cv2.INTER_AREA)
    y, x = int(rng.integers(0, h - small.shape[0] + 1)), int(rng.integers(0, w - small.shape[1] + 1))
    scene[y:y + small.shape[0], x:x + small.shape[1]] = small
    return scene


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", default="val", show_default=True)
@click.option("--per-set", type=int, default=200, show_default=True, help="Photos drawn (seeded) from each set.")
@click.option("--sides", default="0,300,220,160", show_default=True,
              help="Comma-separated longer sides (px) of the placed photo; 0: the photo as it is.")
@click.option("--refine-below", "refine_below", default=str(REFINE_BELOW), show_default=True,
              help="Comma-separated shares of the photo's longer side under which a face is detected again.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(model: str, data: tuple[str, ...], split: str, per_set: int, sides: str, refine_below: str, seed: int,
         out: str | None) -> None:
    side_list = [int(x) for x in sides.split(",")]
    if any(not 0 <= x <= min(SCENE) for x in side_list):
        raise click.BadParameter(f"each side must lie in 0-{min(SCENE)} px (the scene is {SCENE[1]}x{SCENE[0]})",
                                 param_hint="--sides")
    age_model = AgeModel(model, threads=2)
    margin = age_model.spec.face_margin
    rng = np.random.default_rng(seed)
    drawn = []  # (set name, record)
    for s in read_splits(list(data), "auto", None, split):
        take = rng.choice(len(s.records), min(per_set, len(s.records)), replace=False)
        drawn += [(s.name, s.records[i]) for i in sorted(take)]
    named = variants([float(x) for x in refine_below.split(",")])
    detectors = {v: FaceDetector(DetectorOptions.for_photos(refine_below=t)) for v, t in named.items()}
    found: dict[tuple, list[tuple[float, float]]] = {}  # (side, variant, set) -> (age, estimate) per face found
    missed: Counter = Counter()
    changed: Counter = Counter()  # boxes that differ from the one-pass box (found or not included)
    for i, (name, rec) in enumerate(tqdm(drawn, desc="photos", unit="photo")):
        try:  # one photo at a time: a whole data set does not fit in memory
            img = decode_image(rec.path)
        except AgegateError as e:
            click.echo(f"skipped {e}", err=True)
            continue
        for side in side_list:
            # The same scene for every variant (seeded by photo and side).
            rgb = img if side == 0 else place_in_scene(img, side, np.random.default_rng([seed, side, i]))
            first = None
            estimates = {}  # box -> age: a variant that finds the one-pass box gets the same crop and estimate
            for variant, detector in detectors.items():
                key = (side, variant, name)
                found_crop = box_crop(rgb, detector, margin)
                box = None if found_crop is None else found_crop[1]
                if variant == ONE_PASS:
                    first = box
                elif box != first:
                    changed[key] += 1
                if found_crop is None:
                    missed[key] += 1
                    continue
                if box not in estimates:
                    estimates[box] = age_model.estimate_face(found_crop[0]).age
                found.setdefault(key, []).append((rec.age, estimates[box]))
    rows: dict[str, dict] = {}
    for side in side_list:
        for variant in named:
            row = {}
            for n in dict.fromkeys(n for n, _ in drawn):
                v = found.get((side, variant, n), [])
                row[n] = {"mae": age_metrics([a for a, _ in v], [e for _, e in v])["mae"] if v else None,
                          "found": len(v), "missed": missed[(side, variant, n)],
                          "boxes_changed": None if variant == ONE_PASS else changed[(side, variant, n)]}
            rows.setdefault(str(side), {})[variant] = row
            click.echo(f"side {side:4d} {variant:32s} " + "; ".join(
                f"{n} MAE {v['mae']:.2f} ({v['missed']} missed" + (
                    f", {v['boxes_changed']} boxes changed)" if v["boxes_changed"] is not None else ")")
                for n, v in row.items() if v["mae"] is not None))
    result = {"model": model, "split": split, "data": list(data), "per_set": per_set, "scene": list(SCENE),
              "rows": rows, "environment": environment()}
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
