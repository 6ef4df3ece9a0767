"""How light a buyer's eyes read against their skin (`tracking.eye_light`), with nothing, drawn sunglasses or a
drawn mask over the face: where the box's sunglasses line (`tracking.MIN_EYE_LIGHT`) may sit.

Val photos of both shared sets become buyers in `agegate replay`'s till frames (the same placement, camera
changes and seed, `replay --cover`'s covers), and the box's camera detector finds each frame's face. Reported
per cover: percentiles of the frames' eye light, and the share of frames and of buyers (most of their frames)
under each candidate line; for bare faces also per group (UTKFace's race and gender labels, AAF's gender), since
a check that leaves a face unaged must not do so for one group's open eyes. Val only: the line is chosen here,
test replays report what it does.

    python -m agegate.benchmarks.eye_light_probe --buyers 300 --out benchmarks/results/covers/eye-light-val.json
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.covers import Cover
from agegate.convert.replay import FACE_PX, buyer_frames, load_buyers, till_background
from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.tracking import MIN_EYE_LIGHT, eye_light

from .environment import cpu_info

LINES = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
PERCENTILES = (0.5, 1, 5, 50, 95, 99, 99.5)


def buyer_lights(buyers, frames: int, seed: int) -> list[list[float]]:
    """Each buyer's eye light on each of `frames` till frames where the box's detector found a face with eye
    points."""
    rng = np.random.default_rng(seed)
    detector = FaceDetector(DetectorOptions())
    bg = till_background(rng)
    out = []
    for b in buyers:
        lights = []
        for rgb in buyer_frames(b, frames, bg, rng, FACE_PX):
            faces = detector.detect(rgb)
            light = eye_light(rgb, faces[0]) if faces else None
            if light is not None:
                lights.append(light)
        out.append(lights)
    return out


def summarize(lights: list[list[float]]) -> dict:
    flat = np.array([v for b in lights for v in b])
    per_buyer = [np.array(b) for b in lights if b]
    return {"frames": int(flat.size), "buyers": len(per_buyer),
            "percentiles": {f"p{q:g}": round(float(np.percentile(flat, q)), 3) for q in PERCENTILES},
            "frames_under": {f"{t:g}": round(float(np.mean(flat < t)), 4) for t in LINES},
            "buyers_mostly_under": {f"{t:g}": round(float(np.mean([np.mean(b < t) > 0.5 for b in per_buyer])), 4)
                                    for t in LINES}}


def by_group(records, placed, lights) -> dict:
    """Bare faces' eye light per labelled group: the lowest frame, the 1st percentile, frames under each line."""
    attrs = {str(r.path): dict(r.attrs) for r in records}
    groups: dict[str, list[float]] = {}
    for b, ls in zip(placed, lights):
        a = attrs.get(b.path, {})
        source = "utkface" if "utkface" in b.path else "aaf"
        for key in ("race", "gender"):
            if key in a:
                groups.setdefault(f"{source} {key} {a[key]}", []).extend(ls)
    return {g: {"frames": len(v), "min": round(min(v), 3), "p1": round(float(np.percentile(v, 1)), 3),
                **{f"under_{t:g}": int(np.sum(np.array(v) < t)) for t in LINES}}
            for g, v in sorted(groups.items()) if v}


@click.command()
@click.option("--data", "data", multiple=True, default=("../shared/datasets/utkface", "../shared/datasets/aaf"))
@click.option("--split", default="val", show_default=True)
@click.option("--buyers", default=300, show_default=True, help="Buyers in all, half from each set.")
@click.option("--frames", default=8, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--covers", default=",".join(c.value for c in Cover), show_default=True)
@click.option("--out", type=click.Path(), default=None)
def main(data, split, buyers, frames, seed, covers, out):
    from agegate.convert.evaluate import select_records

    rng = np.random.default_rng(seed)
    records = []
    for d in data:
        recs = select_records(d, "auto", None, split)
        records += [recs[i] for i in sorted(rng.permutation(len(recs))[:buyers // len(data)])]
    result = {"split": split, "data": list(data), "frames_per_buyer": frames, "seed": seed,
              "box_line": MIN_EYE_LIGHT, "cpu": cpu_info(), "covers": {}}
    for cover in (Cover(c) for c in covers.split(",")):
        placed, _ = load_buyers(records, cover=cover)
        lights = buyer_lights(placed, frames, seed)
        result["covers"][cover.value] = r = summarize(lights)
        if cover is Cover.NONE:
            result["bare_by_group"] = by_group(records, placed, lights)
        click.echo(f"{cover.value:10s} {r['frames']} frames of {r['buyers']} buyers: "
                   + " ".join(f"{k} {v}" for k, v in r["percentiles"].items())
                   + "; frames under " + " ".join(f"{k}: {v:.2%}" for k, v in r["frames_under"].items()))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
