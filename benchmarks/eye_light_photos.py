"""The box's sunglasses check (`tracking.eye_light` against `tracking.MIN_EYE_LIGHT`) on the data sets' own photos:
real lenses, where drawn ones were all `replay --cover` had, and the bare faces the check would leave unaged.

Every photo of the given sets and splits goes through the photo detector; the largest face's eye light is read
on the photo as it is (no till camera). Reported: how many photos read under each line, per labelled group
(UTKFace's race and gender, AAF's gender), and the darkest `--lowest` photos by path, for a person to look at.
Photos a person saw wearing sunglasses are listed in `--sunglasses` (one data-set-relative path per line, then
what was seen), and are then counted apart: which of them the check catches, and the bare faces' rates without them.
No model runs: the check only.

    python -m agegate.benchmarks.eye_light_photos --sunglasses benchmarks/results/covers/real-sunglasses.txt \\
        --out benchmarks/results/covers/eye-light-photos.json
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

from agegate.edge.detect import DetectorOptions, FaceDetector
from agegate.edge.errors import AgegateError
from agegate.edge.preprocess import decode_image
from agegate.edge.tracking import MIN_EYE_LIGHT, eye_light
from agegate.train.label_errors import read_label_exclusions

from .environment import cpu_info
from .eye_light_probe import LINES  # the candidate lines, as on till frames

RACES = {"0": "White", "1": "Black", "2": "Asian", "3": "Indian", "4": "Others"}


def relative(path: str | Path, data: str | Path) -> str:
    """A photo's path as `<set folder name>/<path inside it>`, the way the list of seen sunglasses names it."""
    return f"{Path(data).name}/{Path(path).relative_to(Path(data)).as_posix()}"


def read_seen(path: str | Path | None) -> set[str]:
    """The photos a person saw wearing sunglasses: one relative path per line then what was seen, in the format of
    the lists of mislabelled images (`read_label_exclusions`: blank lines and `#` lines skipped)."""
    if path is None:
        return set()
    return {e.path for e in read_label_exclusions(Path(path), "photos seen wearing sunglasses",
                                                  "what was seen", "dark lenses")}


def groups_of(source: str, attrs: dict) -> list[str]:
    out = []
    if "race" in attrs:
        out.append(f"{source} race {RACES.get(str(attrs['race']), attrs['race'])}")
    if "gender" in attrs:
        out.append(f"{source} gender {attrs['gender']}")
    return out


def under_lines(lights: list[float]) -> dict:
    v = np.asarray(lights, np.float64)
    return {"photos": int(v.size), **{f"under_{t:g}": int(np.sum(v < t)) for t in LINES}}


def summarize(rows: list[dict], seen: set[str], lowest: int) -> dict:
    """`rows`: one per photo with a face and eye points ({"path", "source", "age", "split", "groups", "light"})."""
    bare = [r for r in rows if r["path"] not in seen]
    by_group: dict[str, list[float]] = defaultdict(list)
    for r in bare:
        for g in r["groups"]:
            by_group[g].append(r["light"])
    glasses = sorted((r for r in rows if r["path"] in seen), key=lambda r: r["light"])
    return {
        "photos": len(rows), "box_line": MIN_EYE_LIGHT,
        "bare": under_lines([r["light"] for r in bare]),
        "bare_by_group": {g: under_lines(v) for g, v in sorted(by_group.items())},
        "sunglasses_seen": {"listed": len(seen), "found": len(glasses),
                            "caught": sum(r["light"] < MIN_EYE_LIGHT for r in glasses),
                            "photos": [{k: r[k] for k in ("path", "age", "light")} for r in glasses]},
        "lowest": [{k: r[k] for k in ("path", "age", "split", "light")} | {"sunglasses_seen": r["path"] in seen}
                   for r in sorted(rows, key=lambda r: r["light"])[:lowest]],
    }


@click.command()
@click.option("--data", "data", multiple=True, default=("../shared/datasets/utkface", "../shared/datasets/aaf"))
@click.option("--split", "splits", multiple=True, default=("train", "val", "test"), show_default=True,
              help="Splits to read; repeat.")
@click.option("--sunglasses", type=click.Path(exists=True, dir_okay=False),
              help="Photos a person saw wearing sunglasses: one relative path per line (set folder/path), then "
                   "what was seen.")
@click.option("--lowest", default=100, show_default=True, help="List this many of the darkest-eyed photos.")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
def main(data, splits, sunglasses, lowest, out):
    from agegate.convert.evaluate import select_records
    from agegate.edge.progress import tracked

    seen = read_seen(sunglasses)
    detector = FaceDetector(DetectorOptions.for_photos())
    rows, no_eyes = [], 0
    for d in data:
        for split in splits:
            recs = select_records(d, "auto", None, split)
            for rec in tracked(recs, len(recs), f"{Path(d).name} {split}", "img"):
                try:
                    rgb = decode_image(rec.path)
                except AgegateError:
                    continue
                faces = detector.detect(rgb)
                light = eye_light(rgb, max(faces, key=lambda f: f.width)) if faces else None
                if light is None:
                    no_eyes += 1
                    continue
                source = Path(d).name
                rows.append({"path": relative(rec.path, d), "source": source, "age": float(rec.age), "split": split,
                             "groups": groups_of(source, dict(rec.attrs)), "light": round(float(light), 4)})
    result = {"data": list(data), "splits": list(splits), "no_face_or_eyes": no_eyes, "cpu": cpu_info(),
              **summarize(rows, seen, lowest)}
    b, s = result["bare"], result["sunglasses_seen"]
    click.echo(f"{result['photos']} photos with eye points ({no_eyes} without); bare faces under "
               + ", ".join(f"{t:g}: {b[f'under_{t:g}']}" for t in LINES))
    if seen:
        click.echo(f"sunglasses seen by a person: {s['found']} of {s['listed']} listed found, {s['caught']} under "
                   f"the box's line {MIN_EYE_LIGHT}")
    for g, v in result["bare_by_group"].items():
        click.echo(f"  {g:24s} {v['photos']:6d} photos, under 0.3: {v['under_0.3']:3d} "
                   f"({v['under_0.3'] / v['photos']:.2%}), under 0.35: {v['under_0.35']:3d}")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
