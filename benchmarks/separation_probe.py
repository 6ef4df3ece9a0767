"""How well a descriptor tells one buyer from the next: the box's appearance descriptor against the age
model's penultimate features (the issue "one right decision per buyer" suggested the second).

Val photos of both shared sets become buyers in `agegate replay`'s till frames (same placement, camera
changes and seed); the box's camera detector and crop give each frame's face. For each buyer, the
distance from their first frame to each later one is a "within" pair; the distance from the previous
buyer's last frame to each of this buyer's frames is a "between" pair (the next buyer stepping in).
A descriptor is good when a threshold that keeps 99 % of within pairs together lets few between pairs
pass (those are merges). Val only: it informs the choice, test replays report it.

    python -m agegate.benchmarks.separation_probe --buyers 160 --out benchmarks/results/separation-probe.json

The features are read from the tensor that feeds the model's final fully connected layer, with
LiteRT's `experimental_preserve_all_tensors` (a probe; the box does not run that way).
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.replay import _background, buyer_frames, load_buyers
from agegate.edge.default_model import default_model_path
from agegate.edge.detect import DetectorOptions, FaceDetector, crop_face
from agegate.edge.preprocess import normalize, prepare_uint8
from agegate.edge.runtime import AgeModel, interpreter_class
from agegate.edge.tracking import appearance, appearance_distance

from .environment import environment

QUANTILES = (99.0, 99.5, 99.9)


class FeatureProbe:
    """The age model's pooled features (input of its last FULLY_CONNECTED op), unit norm."""

    def __init__(self, path: Path) -> None:
        self.model = AgeModel(path)
        cls, _ = interpreter_class()
        self.it = cls(model_path=str(path), num_threads=2, experimental_preserve_all_tensors=True)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        fc = [o for o in self.it._get_ops_details() if o["op_name"] == "FULLY_CONNECTED"][-1]  # noqa: SLF001
        self.index = int(fc["inputs"][0])

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        spec = self.model.spec
        self.it.set_tensor(self.inp["index"], self.model._quantize(normalize(prepare_uint8(crop, spec), spec)[None]))  # noqa: SLF001
        self.it.invoke()
        f = self.it.get_tensor(self.index).reshape(-1).astype(np.float32)
        f -= f.mean()
        return f / (np.linalg.norm(f) + 1e-6)


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
    probe = FeatureProbe(path)
    records = []
    for d in data:
        rows = read_dataset(d).split("val")
        pick = np.random.default_rng(1).permutation(len(rows))[: buyers // len(data)]
        records += [rows[i] for i in pick]
    people, _ = load_buyers(records)
    detector = FaceDetector(DetectorOptions())
    rng = np.random.default_rng(0)
    bg = _background(rng)
    seen = []  # per buyer: [(appearance, features)] of the frames with a face
    for b in people:
        views = []
        for rgb in buyer_frames(b, frames, bg, rng):
            faces = detector.detect(rgb)
            if faces:
                crop = crop_face(rgb, faces[0], probe.model.spec.face_margin)
                views.append((appearance(crop), probe(crop)))
        seen.append(views)
    pairs = {"appearance": ([], []), "features": ([], [])}
    for i, views in enumerate(seen):
        for k in range(1, len(views)):
            pairs["appearance"][0].append(appearance_distance(views[0][0], views[k][0]))
            pairs["features"][0].append(1 - float(views[0][1] @ views[k][1]))
        if i and views and seen[i - 1]:
            last = seen[i - 1][-1]
            for v in views:
                pairs["appearance"][1].append(appearance_distance(last[0], v[0]))
                pairs["features"][1].append(1 - float(last[1] @ v[1]))
    arr = {k: (np.array(w), np.array(b)) for k, (w, b) in pairs.items()}
    # Both together, each scaled by its median between-buyer distance, the features at half weight.
    scale = {k: float(np.median(b)) for k, (_, b) in arr.items()}
    arr["combined"] = tuple(arr["appearance"][i] / scale["appearance"] + 0.5 * arr["features"][i] / scale["features"]
                            for i in (0, 1))
    result = {"model": path.name, "buyers": len(people), "frames": frames,
              "pairs": {"within": len(pairs["appearance"][0]), "between": len(pairs["appearance"][1])},
              "descriptors": {k: separation(w, b) for k, (w, b) in arr.items()},
              "environment": environment()}
    for name, r in result["descriptors"].items():
        click.echo(f"{name:10s} median within {r['median_within']:.3f} between {r['median_between']:.3f}; " + "; ".join(
            f"at within p{q:g} {r[f'between_below_p{q:g}'] * 100:.2f}% of between pairs pass" for q in QUANTILES))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
