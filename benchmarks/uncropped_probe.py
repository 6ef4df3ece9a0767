"""Does the photo path find and frame a face that is small in the photo? Data sets hold tight chips and
face photos; uncropped photos (a portrait, a half-body shot) show the same face small in a larger picture.
Each photo of the split is placed, shrunk so its longer side is `--sides` pixels, at a seeded random spot of
a 1280x960 scene (a muted colour with sensor noise), and goes through the photo detector profile, the
box's crop and the model, as `agegate eval` reads a model trained on box crops; side 0 is the photo as it is.

Per detector variant and side: MAE per set, faces not found, and boxes that differ from the one-pass box
(`--split all --per-set 100000 --sides 0`: what a variant changes in the data sets as they are). The
variants are the photo profile as it was (one pass: short range on the whole frame, padded retry, Haar) and
with small faces detected again on a region around them (`refine_below`) and, when the whole photo shows no
face, overlapping tiles searched (`tiles`; `edge.detect.DetectorOptions.for_photos`, the shipped pair
marked). Each search is a chance to report a face that is not there, so `--faceless N` also counts, per
variant, the scenes of N made of drawn photos with their faces painted out where a face is reported.
`--scene clutter` places each photo in such a scene instead of a plain one, and `--bystanders K` pastes K
other people's photos beside it, their faces smaller (is the largest face still the labelled one?).
`--labelled` hands each variant the placed photo's rectangle as the labelled face box (the loosest label a
data set could carry: `face_x,face_y,face_w,face_h` in a CSV), so the face in it is taken, not the largest.
Chosen on val; a test run reports what was chosen. Every run and its figures: benchmarks/PHOTOS.md.

    python -m agegate.benchmarks.uncropped_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --per-set 400 \\
        --sides 300,220,160,120,90 --tiles 0,3,4,5 --faceless 400 \\
        --out benchmarks/results/uncropped-photos-tiles-val.json
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
import cv2
import numpy as np

from agegate.convert.evaluate import read_splits
from agegate.convert.metrics import age_metrics
from agegate.edge.detect import REFINE_BELOW, TILES, DetectorOptions, FaceBox, FaceDetector, box_crop
from agegate.edge.errors import AgegateError
from agegate.edge.preprocess import decode_image
from agegate.edge.progress import tracked
from agegate.edge.runtime import AgeModel
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment

SCENE = (960, 1280)  # height, width
ONE_PASS = "one pass (before)"


def variants(refine_below: list[float], tiles: list[int]) -> dict[str, dict]:
    """Variant name -> DetectorOptions.for_photos overrides: one pass, then each share and tile grid asked
    for (the shipped pair marked; "tiles" named only where more than one grid is asked for)."""
    out = {ONE_PASS: {"refine_below": 0.0, "tiles": 0}}
    for t in refine_below:
        for n in tiles:
            name = f"refine below {t:g}" + (f", tiles {n}" if len(tiles) > 1 else "")
            out[name + (" (shipped)" if (t, n) == (REFINE_BELOW, TILES) else "")] = {"refine_below": t, "tiles": n}
    return out


def plain_scene(rng: np.random.Generator) -> np.ndarray:
    """A 1280x960 scene of one muted colour with sensor noise."""
    h, w = SCENE
    scene = np.full((h, w, 3), rng.uniform(40, 200, 3), np.float32) + rng.normal(0, 8, (h, w, 3))
    return np.clip(scene, 0, 255).astype(np.uint8)


def paste(scene: np.ndarray, rgb: np.ndarray, side: int, rng: np.random.Generator,
          avoid: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int] | None:
    """`rgb` shrunk so its longer side is `side` px, pasted (in place) at a random spot of `scene`; its
    rectangle (x0, y0, x1, y1). With `avoid`, a spot clear of that rectangle (None when 20 draws found none)."""
    h, w = scene.shape[:2]
    k = side / max(rgb.shape[:2])
    small = cv2.resize(rgb, (max(1, round(rgb.shape[1] * k)), max(1, round(rgb.shape[0] * k))),
                       interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    for _ in range(20):
        y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
        if avoid is None or x >= avoid[2] or x + sw <= avoid[0] or y >= avoid[3] or y + sh <= avoid[1]:
            scene[y:y + sh, x:x + sw] = small
            return x, y, x + sw, y + sh
    return None


def place_in_scene(rgb: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    """`rgb` shrunk so its longer side is `side` px, pasted at a random spot of a plain, noisy scene."""
    return compose(rgb, side, rng)[0]


def compose(rgb: np.ndarray, side: int, rng: np.random.Generator, bystanders: list[tuple[np.ndarray, float]] = (),
            face_share: float = 1.0, base: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The scene `place_in_scene` makes (or `base`, a cluttered scene), and the photo's rectangle in it.
    Bystanders, other people's photos given with their face's share of their longer side (`face_share` is
    the photo's own), are pasted beside it and clear of it, scaled so each face is 0.4-0.8 of the photo's
    face: people standing further back."""
    scene = plain_scene(rng) if base is None else base.copy()
    where = paste(scene, rgb, side, rng)
    for other, share in bystanders:
        other_side = side * face_share * rng.uniform(0.4, 0.8) / share
        paste(scene, other, int(np.clip(other_side, 16, min(SCENE) // 2)), rng, avoid=where)
    return scene, where


def face_share(rgb: np.ndarray, detector: FaceDetector) -> float | None:
    """The largest face's side as a share of the photo's longer side, measured as the probe's scenes show
    it (the photo at 300 px in a plain grey scene: a chip as it is is detected on a padded frame, with a
    looser box); None without a face."""
    scene = np.full((*SCENE, 3), 128, np.uint8)
    paste(scene, rgb, 300, np.random.default_rng(0))
    faces = detector.detect(scene)
    return faces[0].side / 300 if faces else None


def paint_out(rgb: np.ndarray, faces: list, rng: np.random.Generator) -> np.ndarray:
    """A copy of `rgb` with each face, forehead and chin painted over in a muted colour with noise."""
    out = rgb.copy()
    for f in faces:
        (cx, cy), s = f.center, 0.9 * f.side
        x0, y0 = int(max(0, cx - s)), int(max(0, cy - 1.2 * s))
        x1, y1 = int(min(out.shape[1], cx + s)), int(min(out.shape[0], cy + s))
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = np.clip(rng.uniform(40, 200, 3) + rng.normal(0, 8, (y1 - y0, x1 - x0, 3)), 0, 255)
    return out


def faceless_scene(pieces: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A plain scene with 4-7 of `pieces` (photos whose faces were painted out) at 160-560 px: what is
    left of people and their backgrounds, and no face a detector should report."""
    scene = plain_scene(rng)
    for _ in range(int(rng.integers(4, 8))):
        paste(scene, pieces[int(rng.integers(len(pieces)))], int(rng.integers(160, 561)), rng)
    return scene


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True)
@click.option("--per-set", type=click.IntRange(min=1), default=200, show_default=True,
              help="Photos drawn (seeded) from each set.")
@click.option("--sides", default="0,300,220,160", show_default=True,
              help="Comma-separated longer sides (px) of the placed photo; 0: the photo as it is.")
@click.option("--refine-below", "refine_below", default=str(REFINE_BELOW), show_default=True,
              help="Comma-separated shares of the photo's longer side under which a face is detected again.")
@click.option("--tiles", default=str(TILES), show_default=True,
              help="Comma-separated tile grids (n for n x n; 0: none) searched when the whole photo shows no face.")
@click.option("--faceless", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also count the variants' false faces on this many scenes of drawn photos with their faces "
                   "painted out.")
@click.option("--scene", "scene_kind", type=click.Choice(["plain", "clutter"]), default="plain", show_default=True,
              help="The scene a photo is placed in: one muted colour, or clutter made of other drawn photos with "
                   "their faces painted out (hair, clothes, rooms, and what the painting missed).")
@click.option("--bystanders", type=click.IntRange(min=0), default=0, show_default=True,
              help="Other drawn photos pasted, smaller, beside each placed one (people behind the buyer).")
@click.option("--labelled", is_flag=True,
              help="Give the detector the placed photo's rectangle as the labelled face box (as a CSV's "
                   "face_x,face_y,face_w,face_h would): the face inside it is taken, not the largest in the scene.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(model: str, data: tuple[str, ...], split: str, per_set: int, sides: str, refine_below: str, tiles: str,
         faceless: int, scene_kind: str, bystanders: int, labelled: bool, seed: int, out: str | None) -> None:
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
    if not 0 <= bystanders < len(drawn):
        raise click.BadParameter(f"{bystanders} bystanders need more than {len(drawn)} photos drawn (--per-set)",
                                 param_hint="--bystanders")
    named = variants([float(x) for x in refine_below.split(",")], [int(x) for x in tiles.split(",")])
    detectors = {v: FaceDetector(DetectorOptions.for_photos(**kw)) for v, kw in named.items()}
    shipped = FaceDetector(DetectorOptions.for_photos())
    own_share = 1.0
    pieces = painted_pieces(drawn, np.random.default_rng([seed, 1])) if scene_kind == "clutter" else []
    found: dict[tuple, list[tuple]] = {}  # (side, variant, set) -> (age, estimate, inside the photo) per face found
    missed: Counter = Counter()
    changed: Counter = Counter()  # boxes that differ from the one-pass box (found or not included)
    elsewhere: Counter = Counter()  # faces found outside the placed photo (a bystander, or no face at all)
    for i, (name, rec) in enumerate(tracked(drawn, len(drawn), "photos", "photo")):
        try:  # one photo at a time: a whole data set does not fit in memory
            img = decode_image(rec.path)
            others = [decode_image(drawn[(i + 1 + int(j)) % len(drawn)][1].path)
                      for j in np.random.default_rng([seed, i]).choice(len(drawn) - 1, bystanders, replace=False)]
        except AgegateError as e:
            click.echo(f"skipped {e}", err=True)
            continue
        if others:  # faces sized against the photo's own face (a photo without one gets none beside it)
            own_share = face_share(img, shipped)
            others = [(o, share) for o in others if own_share and (share := face_share(o, shipped))]
        for side in side_list:
            # The same scene for every variant (seeded by photo and side).
            base = faceless_scene(pieces, np.random.default_rng([seed, side, i, 1])) if pieces and side else None
            rgb, where = (img, (0, 0, img.shape[1], img.shape[0])) if side == 0 else compose(
                img, side, np.random.default_rng([seed, side, i]), others, own_share, base)
            photo = FaceBox(*where)  # the placed photo's rectangle: the labelled person's face lies in it
            first = None
            estimates = {}  # box -> age: a variant that finds the one-pass box gets the same crop and estimate
            for variant, detector in detectors.items():
                key = (side, variant, name)
                found_crop = box_crop(rgb, detector, margin, label=photo if labelled else None)
                box = None if found_crop is None else found_crop.face
                if variant == ONE_PASS:
                    first = box
                elif box != first:
                    changed[key] += 1
                if found_crop is None:
                    missed[key] += 1
                    continue
                inside = photo.contains(*box.center)
                elsewhere[key] += not inside
                if box not in estimates:
                    estimates[box] = age_model.estimate_face(found_crop.image).age
                found.setdefault(key, []).append((rec.age, estimates[box], inside))
    rows: dict[str, dict] = {}
    for side in side_list:
        for variant in named:
            row = {}
            for n in dict.fromkeys(n for n, _ in drawn):
                v = found.get((side, variant, n), [])
                mine = [(a, e) for a, e, inside in v if inside]  # the labelled face, not someone beside it
                row[n] = {"mae": age_metrics([a for a, _, _ in v], [e for _, e, _ in v])["mae"] if v else None,
                          "mae_inside": age_metrics([a for a, _ in mine], [e for _, e in mine])["mae"] if mine else None,
                          "found": len(v), "missed": missed[(side, variant, n)],
                          "boxes_changed": None if variant == ONE_PASS else changed[(side, variant, n)],
                          "found_elsewhere": elsewhere[(side, variant, n)]}
            rows.setdefault(str(side), {})[variant] = row
            click.echo(f"side {side:4d} {variant:40s} " + "; ".join(
                f"{n} MAE {v['mae']:.2f} ({v['missed']} missed, {v['found_elsewhere']} elsewhere"
                + (f", MAE inside {v['mae_inside']:.2f}" if v["found_elsewhere"] and v["mae_inside"] is not None else "") + (
                    f", {v['boxes_changed']} boxes changed)" if v["boxes_changed"] is not None else ")")
                for n, v in row.items() if v["mae"] is not None))
    result = {"model": model, "split": split, "data": list(data), "per_set": per_set, "scene": list(SCENE),
              "scene_kind": scene_kind, "bystanders": bystanders, "labelled": labelled, "rows": rows, "environment": environment()}
    if faceless:
        result["faceless"] = count_false_faces(drawn, detectors, faceless, seed)
        click.echo(f"faceless scenes with a face reported, of {faceless}: " + "; ".join(
            f"{v} {k}" for v, k in result["faceless"]["with_a_face"].items()))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


def painted_pieces(drawn: list, rng: np.random.Generator, n: int = 60) -> list[np.ndarray]:
    """`n` drawn photos with every face the shipped photo profile finds painted out (photos where it finds
    none are left out): what is left of people and their backgrounds, to build scenes from."""
    painter = FaceDetector(DetectorOptions.for_photos())
    pieces = []
    for i in rng.choice(len(drawn), min(n, len(drawn)), replace=False):
        img = decode_image(drawn[int(i)][1].path)
        faces = painter.detect(img)
        if faces:
            pieces.append(paint_out(img, faces, rng))
    return pieces


def count_false_faces(drawn: list, detectors: dict[str, FaceDetector], n_scenes: int, seed: int,
                      frame: tuple[int, int] | None = None) -> dict:
    """Scenes of drawn photos with every face the shipped photo profile finds painted out, and how many of
    them each variant reports a face in (and how many faces in all). 60 photos are painted (photos where no
    face is found are left out). `frame` (width, height): each scene shrunk to it first, as a camera sees it."""
    rng = np.random.default_rng([seed, n_scenes])
    pieces = painted_pieces(drawn, rng)
    hits: Counter = Counter()
    faces: Counter = Counter()
    for _ in tracked(range(n_scenes), n_scenes, "faceless scenes", "scene"):
        scene = faceless_scene(pieces, rng)
        if frame is not None:
            scene = cv2.resize(scene, frame, interpolation=cv2.INTER_AREA)
        for variant, detector in detectors.items():
            found = detector.detect(scene)
            hits[variant] += bool(found)
            faces[variant] += len(found)
    return {"scenes": n_scenes, "pieces": len(pieces), "with_a_face": {v: hits[v] for v in detectors},
            "faces": {v: faces[v] for v in detectors}}


if __name__ == "__main__":
    main()
