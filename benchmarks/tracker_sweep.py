"""Choose the tracker's `Separation` on val: the tracker replayed over `agegate replay`'s frames for a grid of rules.

A full `agegate replay` runs the age model on every face and takes about 15 minutes for 1,200 buyers on two
cores; comparing a dozen rules that way takes hours. The rules only change which frames go to which track,
so this sweep looks at every frame once (detector, crop, Look with the model's features, quality) and then
replays the real `IoUTracker` over the stored looks once per rule, counting buyers the way `agegate replay`
does: a track of at least `min_track_frames` frames, or with `decide_after` good frames, makes a decision,
credited to the buyer seen most in it; a buyer with none is merged, with more than one split. Val only:
the rule it picks is then measured with `agegate replay` on test.

    python -m agegate.benchmarks.tracker_sweep --buyers 1600 --out benchmarks/results/tracker-sweep-val.json

`--grey` looks at the frames as a monochrome camera gives them (README, "A monochrome camera":
`benchmarks/results/grey-camera/tracker-sweep-val-{colour,grey}.json`, both at 2026-12-07's box).
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import numpy as np

from agegate.convert.replay import FPS, ReplayOptions, load_buyers, till_frames
from agegate.edge.default_model import default_model_path
from agegate.edge.detect import FaceBox, FaceDetector, crop_face
from agegate.edge.pipeline import BoxOptions
from agegate.edge.progress import progress
from agegate.edge.runtime import AgeModel
from agegate.edge.tracking import (MIN_SPLIT_SCORE, IoUTracker, Look, Separation, appearance, box_iou, box_move,
                                   frame_quality)
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment

#: The rules compared (the first is the box's default); features on or off per rule. jump_change=1.0 is
#: the rule without the jump (where a face is does not count).
GRID = [
    (Separation(), True),
    (Separation(jump_change=1.0), True),
    (Separation(jump_change=0.4), True),
    (Separation(jump_change=0.6), True),
    (Separation(jump_change=0.7), True),
    (Separation(jump_shift=0.15, jump_scale=1.15), True),
    (Separation(jump_shift=0.35, jump_scale=1.35), True),
    (Separation(), False),
    (Separation(jump_change=1.0), False),
    (Separation(appearance_change=0.35), False),
    (Separation(appearance_change=0.45), False),
    (Separation(look_change=0.30), True),
    (Separation(look_change=0.35), True),
    (Separation(look_change=0.40), True),
    (Separation(look_change=0.50), True),
    (Separation(feature_weight=0.3, look_change=0.45), True),
    (Separation(feature_weight=0.3, look_change=0.50), True),
    (Separation(far=1e9), True),
    (Separation(age_change=None), True),
    (Separation(age_change=0.4), True),
    (Separation(age_change=0.5), True),
    (Separation(age_change=0.6), True),
]


@dataclass
class Seen:
    box: FaceBox
    look: Look
    good: bool


def look_at_frames(buyers, options: ReplayOptions, model: AgeModel,
                   box: BoxOptions) -> list[tuple[int | None, list[Seen]]]:
    detector = FaceDetector(box.detector)
    frames = []
    bar = progress(len(buyers), "buyers", "buyer")
    for rgb, now in till_frames(buyers, options, tail=box.max_missed + 2):
        who = now.who
        if who is not None and (not frames or frames[-1][0] != who):
            bar.update(1)
        seen = []
        for face in detector.detect(rgb):
            crop = crop_face(rgb, face, model.spec.face_margin)
            q = frame_quality(crop, face, box.min_quality_face, box.min_sharpness)
            run = model.run_face(crop)
            seen.append(Seen(face, appearance(crop, run.features, run.age), q.good))
        frames.append((who, seen))
    bar.close()
    return frames


def replay_tracker(frames, rule: Separation, features: bool, box: BoxOptions) -> dict:
    """Merged and split buyers when the tracker follows `rule` (the pipeline's decision timing)."""
    tracker = IoUTracker(max_missed=box.max_missed, window=box.window, separation=rule)
    counts: dict[int, Counter] = defaultdict(Counter)
    decided: set[int] = set()

    def ended(tracks):
        decided.update(t.track_id for t in tracks if t.frames >= box.min_track_frames)

    for i, (who, seen) in enumerate(frames):
        ts = i / FPS
        looks = [s.look if features else Look(s.look.grey, s.look.colour, s.look.shape) for s in seen]
        for track, s in zip(tracker.match([s.box for s in seen], ts, looks), seen):
            counts[track.track_id][who] += 1
            held = track.track_id in decided or track.changed
            track.add(s.box, ts, None if held or not s.good else 0.0)
            if track.good_frames >= box.decide_after:
                decided.add(track.track_id)
        ended(tracker.expire())
    ended(tracker.drain())
    own: Counter = Counter()
    for tid in decided:
        people = Counter({k: v for k, v in counts[tid].items() if k is not None})
        if people:
            own[people.most_common(1)[0][0]] += 1
    shown = {w for c in counts.values() for w in c if w is not None}
    return {"merged": sum(own[b] == 0 for b in shown), "split": sum(own[b] > 1 for b in shown), "buyers": len(shown)}


def box_motion(frames, box: BoxOptions) -> dict:
    """How far the most confident face moves from one frame to the next while one buyer is shown, against
    how far it moves when the next buyer steps in while the last one's track is still alive (at most
    max_missed empty frames between them) and overlaps it enough to be matched: `Separation.jump_*` and
    `age_change` were read from this. Box shift in face sizes, scale as a ratio >= 1; age as the gap in
    log(1 + age) between a face's reading and the running (Look.blend) reading of the buyer before it."""
    match = IoUTracker().iou_match
    within, steps = [], []
    last, last_who, gap, running = None, None, 0, None
    for who, seen in frames:
        face = max(seen, key=lambda s: s.box.score) if seen else None
        if face is None or who is None or face.box.score < MIN_SPLIT_SCORE:
            gap += face is None or who is None
            continue
        if last is not None and gap <= box.max_missed:
            age_gap = _gap(running.log_age, face.look.log_age)
            if who == last_who and gap == 0:
                within.append((*box_move(last.box, face.box), age_gap))
            elif who != last_who and box_iou(last.box, face.box) >= match:
                steps.append((*box_move(last.box, face.box), age_gap))
        running = face.look if who != last_who else running.blend(face.look)
        last, last_who, gap = face, who, 0

    def pct(rows, k, qs):
        v = [r[k] for r in rows if r[k] is not None]
        return [round(float(np.percentile(v, q)), 3) for q in qs] if v else []

    hi, lo = [50, 99, 99.9], [10, 50]
    return {"within_buyer": {"frames": len(within), "percentiles": hi, "shift": pct(within, 0, hi),
                             "scale": pct(within, 1, hi), "log_age_gap": pct(within, 2, hi)},
            "next_buyer_in_place": {"buyers": len(steps), "percentiles": lo, "shift": pct(steps, 0, lo),
                                    "scale": pct(steps, 1, lo), "log_age_gap": pct(steps, 2, lo)}}


def _differences(rule: Separation) -> str:
    """What a rule changes against the box's own, e.g. 'jump_change=0.7'."""
    box = asdict(Separation())
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in asdict(rule).items()
                     if v != box[k]) or "(the box's rule)"


def _gap(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else abs(a - b)


@click.command()
@click.option("--data", "data", multiple=True, default=("../shared/datasets/utkface", "../shared/datasets/aaf"))
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True)
@click.option("--buyers", default=1600, show_default=True, help="Buyers in all, half from each set.")
@click.option("--model", "model_path", type=click.Path(exists=True), default=None)
@click.option("--grey", is_flag=True, help="Every frame grey, as a monochrome (night-mode) camera gives it.")
@click.option("--out", type=click.Path(), default=None)
def main(data, split, buyers, model_path, grey, out):
    from agegate.train.datasets import read_dataset

    path = Path(model_path) if model_path else default_model_path()
    model = AgeModel(path)
    records = []
    for d in data:
        rows = read_dataset(d).split(split)
        pick = np.random.default_rng(7).permutation(len(rows))[: buyers // len(data)]
        records += [rows[i] for i in pick]
    people, _ = load_buyers(records)
    box = BoxOptions()
    frames = look_at_frames(people, ReplayOptions(grey=grey), model, box)
    motion = box_motion(frames, box)
    click.echo(f"box motion: {json.dumps(motion)}")
    rows = []
    for rule, features in GRID:
        if features and not model.has_features:
            continue
        r = {"rule": asdict(rule), "features": features, **replay_tracker(frames, rule, features, box)}
        rows.append(r)
        click.echo(f"{'features' if features else 'image only':10s} {_differences(rule):42s} merged {r['merged']:3d}  "
                   f"split {r['split']:3d}  of {r['buyers']}")
    if out:
        Path(out).write_text(json.dumps({"model": path.name, "split": split, "grey": grey, "buyers": len(people),
                                         "frames": len(frames), "box_motion": motion, "rules": rows,
                                         "environment": environment()},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
