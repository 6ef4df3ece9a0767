"""How well a descriptor tells one buyer from the next: the parts of the box's Look (edge/tracking.py), alone
and as the box combines them.

Val photos of both shared sets become buyers in `agegate replay`'s till frames (same placement, camera
changes and seed); the box's camera detector and crop give each frame's face. For each buyer, the
distance from their first frame to each later one is a "within" pair; the distance from the previous
buyer's last frame to each of this buyer's frames is a "between" pair (the next buyer stepping in).
A descriptor is good when a threshold that keeps 99 % of within pairs together lets few between pairs
pass (those are merges). Val only: it informs the choice, test replays report it. (The tracker's
thresholds were chosen with the whole tracker replayed on val, which this probe does not do: a change
must hold for several frames there.)

    python -m agegate.benchmarks.separation_probe --buyers 160 --out benchmarks/results/separation-probe.json

The model's features come from its features output (convert/feature_output.py), as on the box.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.replay import buyer_frames, load_buyers, till_background
from agegate.edge.default_model import default_model_path
from agegate.edge.detect import DetectorOptions, FaceDetector, crop_face
from agegate.edge.runtime import AgeModel
from agegate.edge.tracking import (Look, Separation, appearance, appearance_distance, cosine,
                                   thumbnail_colour_distance)

from .environment import environment

#: Each part of a Look as a distance of its own; "image" and "box" are the tracker's own distances.
DESCRIPTORS = {
    "thumbnail+colour": thumbnail_colour_distance,
    "hog": lambda a, b: 1 - cosine(a.shape, b.shape),
    "features": lambda a, b: 1 - cosine(a.features, b.features),
    "image (thumbnail+colour+hog)": appearance_distance,
    "box (image + features)": lambda a, b: Separation().distance(a, b)[0],
}
QUANTILES = (99.0, 99.5, 99.9)


def separation(within: np.ndarray, between: np.ndarray) -> dict:
    out = {"median_within": float(np.median(within)), "median_between": float(np.median(between))}
    for q in QUANTILES:
        t = float(np.percentile(within, q))
        out[f"within_p{q:g}"] = t
        out[f"between_below_p{q:g}"] = float(np.mean(between <= t))
    return out


@click.command()
@click.option("--data", "data", multiple=True, default=("../shared/datasets/utkface", "../shared/datasets/aaf"))
@click.option("--buyers", default=160, show_default=True, help="Buyers in all, half from each set.")
@click.option("--frames", default=8, show_default=True)
@click.option("--model", "model_path", type=click.Path(exists=True), default=None)
@click.option("--out", type=click.Path(), default=None)
def main(data, buyers, frames, model_path, out):
    from agegate.train.datasets import read_dataset

    path = Path(model_path) if model_path else default_model_path()
    model = AgeModel(path)
    if not model.has_features:
        raise click.UsageError(f"{path} has no features output (python -m agegate.convert.feature_output adds it)")
    records = []
    for d in data:
        rows = read_dataset(d).split("val")
        pick = np.random.default_rng(1).permutation(len(rows))[: buyers // len(data)]
        records += [rows[i] for i in pick]
    people, _ = load_buyers(records)
    detector = FaceDetector(DetectorOptions())
    rng = np.random.default_rng(0)
    bg = till_background(rng)
    seen: list[list[Look]] = []  # per buyer: the Looks of the frames with a face
    for b in people:
        views = []
        for rgb in buyer_frames(b, frames, bg, rng):
            faces = detector.detect(rgb)
            if faces:
                crop = crop_face(rgb, faces[0], model.spec.face_margin)
                views.append(appearance(crop, model.features_face(crop)))
        seen.append(views)
    pairs = {k: ([], []) for k in DESCRIPTORS}
    for i, views in enumerate(seen):
        for name, dist in DESCRIPTORS.items():
            pairs[name][0].extend(dist(views[0], v) for v in views[1:])
            if i and views and seen[i - 1]:
                pairs[name][1].extend(dist(seen[i - 1][-1], v) for v in views)
    result = {"model": path.name, "buyers": len(people), "frames": frames,
              "pairs": {"within": len(pairs["hog"][0]), "between": len(pairs["hog"][1])},
              "descriptors": {k: separation(np.array(w), np.array(b)) for k, (w, b) in pairs.items()},
              "environment": environment()}
    for name, r in result["descriptors"].items():
        click.echo(f"{name:30s} median within {r['median_within']:.3f} between {r['median_between']:.3f}; " + "; ".join(
            f"at within p{q:g} {r[f'between_below_p{q:g}'] * 100:.2f}% pass" for q in QUANTILES))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
