"""Is the box's blur gate set where the model stops being reliable? The box ages a face frame only if its
crop is sharp enough (variance of the Laplacian >= `BoxOptions.min_sharpness`, 20 since the first
release, not measured); a buyer with fewer than `min_frames` sharp frames is decided `uncertain`, and at
the till an uncertain adult is asked for ID like a minor. In the v2.3 val replay 53 of 1,702 buyers ended
`uncertain` as blurred.

One replay of calibrate's buyers (every minor of the split and `--buyers` others, seeded; `--exclude` as
calibrate's) runs the real box with the blur gate off and decisions held to the end of each track, so every
face frame is judged and aged and nothing else changes (tracking does not read estimates' quality). Each
frame's sharpness, face size, other gate (too small, too dark) and estimate are recorded. Then, per blur
limit, each track's decision is re-made as the box makes it: aged frames are those passing the gates, the
decision falls at the `decide_after`-th of them (or when the track ends), on the last `window` of them
(quality-weighted mixture, the median age, the spread check, `min_frames`). Each limit gets its operating
point as `agegate calibrate` chooses it (the per-image point from `eval` of the same split; per buyer at
--max-minors-ok-buyer with 90 % confidence; the lower of the two).

Reported: per sharpness bin, how far the frames' own estimates lie from the buyer's age (is a blurred frame
a worse estimate?); per limit, buyers uncertain as blurred, minors ok and 25+ asked per buyer at that
limit's point, MAE of the decided buyers. At the box's own limit the re-made decisions should give what
the box gives on the same buyers (`fusion_probe.py` replays them with the gate on). Choose on val; test once
with `agegate replay`.

    python -m agegate.benchmarks.quality_gate_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --buyers 800 \\
        --exclude convert/label-errors-val.txt --out benchmarks/results/quality-gate-probe/val.json
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import click
import numpy as np

from agegate.edge.age_head import AgeHead, p_under
from agegate.edge.challenge25 import BLOCKED_RISK
from agegate.edge.contracts import CHALLENGE_AGE
from agegate.edge.decision import Decision, decide
from agegate.edge.detect import FaceBox
from agegate.edge.pipeline import BoxOptions
from agegate.edge.tracking import FrameQuality, Track

from .calibration_probe import (CalibrationData, at_own_point, buyer_figures, calibration_data, calibration_options,
                                show_progress, write_result)
from .environment import environment

#: Sharpness bins (variance of the Laplacian) for the frames' own errors.
SHARPNESS_BINS = (0, 5, 10, 15, 20, 30, 50, 80, float("inf"))


@dataclass(frozen=True)
class JudgedFrame:
    """One face frame as the box judged it with the blur gate off."""

    sharpness: float
    face_px: float
    other_gate: str  # a decision.Reason code other than blurred ('' when it passed them)
    age: float | None
    probs: np.ndarray | None

    def weight(self) -> float:
        return FrameQuality(self.face_px, self.sharpness, True).weight


class Remade(NamedTuple):
    """A track's decision as re-made: the decision, fused age, risk, the uncertain reason's code (or '') and
    how many of the track's face frames had been seen when it fell (all of them: at the track's end)."""

    kind: Decision
    age: float | None
    risk: float | None
    why: str
    frames_seen: int


def remake(frames: list[JudgedFrame], min_sharpness: float, options: BoxOptions, head: AgeHead) -> Remade:
    """A track's decision with blur limit `min_sharpness`, made by the box's own parts: its frames go into a
    `Track` (window, weights, bad-frame reasons) until `decide_after` of them are aged, and `decide` judges
    the track's fused age, spread and risk, as `BoxPipeline._judge` does."""
    track = Track(0, _ANY_BOX, 0.0, 0.0, window=options.window)
    seen = 0
    for f in frames:
        reason = f.other_gate or ("blurred" if f.sharpness < min_sharpness else "")
        track.add(_ANY_BOX, 0.0, None if reason else f.age, reason, None if reason else f.probs, f.weight())
        seen += 1
        if track.good_frames >= options.decide_after:
            break
    dist = track.fused_distribution()
    risk = None if dist is None else float(p_under(dist, head, CHALLENGE_AGE)[0])
    fused = track.fused_age()
    kind, why = decide(fused, track.good_frames, track.spread(), options.policy, track.bad_frames, risk)
    return Remade(kind, fused, risk, why.split(":", 1)[0] if why else "", seen)


#: Where a re-made track's face is does not enter its decision.
_ANY_BOX = FaceBox(0.0, 0.0, 1.0, 1.0)


def recorded_replay(model_path: str, records, threads: int, show: bool):
    """The box over `records` as buyers, blur gate off and decisions held to each track's end. Returns the
    replay run, each track's judged frames, the unplaced photos and the box's options as shipped."""
    from agegate.convert.replay import ReplayOptions, load_buyers, run_buyers
    from agegate.edge.pipeline import BoxPipeline, box_policy
    from agegate.edge.progress import progress
    from agegate.edge.runtime import AgeModel

    with progress(len(records), "place buyers", "buyer", show) as bar:
        placed, unplaced = load_buyers(records, bar.update)
    model = AgeModel(model_path, threads=threads)
    shipped = BoxOptions(threads=threads)
    options = replace(shipped, policy=box_policy(model.meta, shipped))  # with the model's operating point
    pipeline = BoxPipeline(model, replace(options, min_sharpness=0.0, decide_after=10 ** 6), diagnostic=True)
    frames: dict[int, list[JudgedFrame]] = {}

    def observe(track, q, est):
        frames.setdefault(track.track_id, []).append(JudgedFrame(
            q.sharpness, q.face_px, q.reason, None if est is None else est.age, None if est is None else est.probs))

    pipeline.frame_observer = observe
    with progress(len(placed), "replay", "buyer", show) as bar:
        run = run_buyers(pipeline, placed, ReplayOptions(), bar.update)
    return run, frames, unplaced, options


class Recorded(NamedTuple):
    """What a probe of the box's decision settings works from: calibrate's data and one recorded replay."""

    cal: CalibrationData
    run: object  # replay.ReplayRun
    frames: dict  # track id -> its JudgedFrames
    unplaced: list
    options: BoxOptions  # the box's, with the model's operating point
    served: list  # buyer_tracks(run)


def record(model: str, data, split: str, buyers: int, exclude_file, max_minors_ok: float, threads: int,
           limit: int | None) -> Recorded:
    """calibrate's split and buyers (`calibration_data`), replayed once through the recording box."""
    show = show_progress()
    cal = calibration_data(model, data, split, buyers, exclude_file, max_minors_ok, threads, limit, show)
    run, frames, unplaced, options = recorded_replay(model, cal.buyers, threads, show)
    return Recorded(cal, run, frames, unplaced, options, buyer_tracks(run))


def buyer_tracks(run) -> list[tuple[float, int | None]]:
    """(true age, the track id of the decision the buyer was served with, None if never seen) per buyer."""
    return [(o.buyer.age, None if o.final is None else o.final.track_id) for o in run.outcomes]


def settings_row(frames: dict[int, list[JudgedFrame]], served: list[tuple[float, int | None]], min_sharpness: float,
                 options: BoxOptions, head: AgeHead, cal, max_minors_ok_buyer: float) -> dict:
    """Every track re-made with these settings, and what they do per buyer at their own operating point: minors
    ok and 25+ asked, buyers uncertain (as blurred), MAE of the decided, and the face frames a decided track
    had seen when its decision fell (p50, p95; at the replay's 15 frames/s, 15 frames are a second)."""
    made = {tid: remake(fs, min_sharpness, options, head) for tid, fs in frames.items()}
    ages = np.array([a for a, _ in served], np.float64)
    risk, fused, seen, blurred = [], [], [], 0
    for age, tid in served:
        m = made.get(tid, Remade(Decision.UNCERTAIN, None, None, "never_seen", 0))
        blocked = m.kind == Decision.UNCERTAIN or m.risk is None
        risk.append(BLOCKED_RISK if blocked else m.risk)
        blurred += m.why == "blurred"
        if m.age is not None and m.kind != Decision.UNCERTAIN:
            fused.append(abs(m.age - age))
            seen.append(m.frames_seen)
    risk = np.array(risk, np.float64)
    row = at_own_point(risk, ages, cal, max_minors_ok_buyer)
    del row["per_image"]  # these settings do not act per image
    return {**row, "uncertain": int(np.sum(risk == BLOCKED_RISK)), "uncertain_blurred": blurred,
            "mae_decided": round(float(np.mean(fused)), 4) if fused else None,
            "frames_to_decision_p50": float(np.percentile(seen, 50)) if seen else None,
            "frames_to_decision_p95": float(np.percentile(seen, 95)) if seen else None}


def frame_errors(run, frames) -> dict[str, dict]:
    """Per sharpness bin: frames aged (other gates passed) and their estimates' MAE against the buyer's age."""
    owner = {d.track_id: o.buyer.age for o in run.outcomes for d in o.decisions}
    errs: list[tuple[float, float]] = []
    for tid, fs in frames.items():
        if tid in owner:
            errs += [(f.sharpness, abs(f.age - owner[tid])) for f in fs if f.age is not None]
    e = np.array(errs, np.float64).reshape(-1, 2)
    out = {}
    for lo, hi in zip(SHARPNESS_BINS, SHARPNESS_BINS[1:]):
        m = (e[:, 0] >= lo) & (e[:, 0] < hi)
        out[f"{lo:g}-{hi:g}"] = {"frames": int(m.sum()), "mae": round(float(e[m, 1].mean()), 3) if m.any() else None}
    return out


@click.command()
@calibration_options
@click.option("--limits", default="0,5,10,15,20,30", show_default=True, help="Blur limits to re-make decisions at.")
def main(model, data, split, buyers, exclude_file, max_minors_ok, max_minors_ok_buyer, threads, limit, out,
         limits) -> None:
    cal, run, frames, unplaced, options, served = record(model, data, split, buyers, exclude_file, max_minors_ok,
                                                         threads, limit)
    rows = {f"{s:g}": settings_row(frames, served, s, options, cal.predictions.head, cal, max_minors_ok_buyer)
            for s in (float(x) for x in limits.split(","))}
    result = {"model": model, "split": split, "data": list(data), "buyers": len(run.outcomes),
              "unplaced": len(unplaced), "per_image_point": round(cal.image_point, 6),
              "box_min_sharpness": options.min_sharpness,
              "targets": {"minors_ok_image": max_minors_ok, "minors_ok_buyer": max_minors_ok_buyer},
              "frames_by_sharpness": frame_errors(run, frames), "limits": rows, "environment": environment()}
    click.echo("frames by sharpness (MAE of each frame's estimate against the buyer's age):")
    for b, v in result["frames_by_sharpness"].items():
        click.echo(f"  {b:>8s}: {v['frames']:6d} frames, MAE {v['mae'] if v['mae'] is not None else '-'}")
    for s, r in rows.items():
        click.echo(f"blur limit {s:>3s}: {buyer_figures(r)}; uncertain {r['uncertain']} ({r['uncertain_blurred']} "
                   f"blurred); MAE decided {r['mae_decided']}")
    write_result(out, result)

if __name__ == "__main__":
    main()
