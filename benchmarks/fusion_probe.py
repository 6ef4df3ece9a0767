"""How should a buyer's frames be fused into one P(under 25)? The box takes the mixture of its good frames'
age distributions (`edge.age_head.fuse`): the weighted mean, so a buyer's risk is the mean of the frames'
risks, and frames that disagree widen it. The alternatives measured here:

- `log-pool`: the weighted geometric mean of the distributions, renormalised (logarithmic opinion pool).
  With weights summing to one it is no narrower than a frame when the frames agree (unlike a product,
  it does not treat seconds-apart frames as independent evidence), but where they disagree it keeps the
  mass they share instead of the union of their tails: one blurred frame that looks young no longer
  lifts an adult's risk by its share of the window.
- `median`: the median of the frames' risks (robust to a few odd frames, ignores the quality weights).
- `mixture, equal weights`: the mixture without the frame-quality weights (do the weights matter?).

One replay through the real box (calibrate's buyers: every minor of the split, `--buyers` others, seeded;
`--exclude` leaves mislabelled images out as calibrate does) records, for each decision, the window of
frame distributions and weights it was made from. Each rule then gives every buyer a risk; each rule's
operating point is chosen as `agegate calibrate` chooses it (the per-image point from `eval` on the same
split, the per-buyer point at --max-minors-ok-buyer with 90 % confidence, the lower of the two), and the
figures are what that point does per buyer. The same frames for every rule, so the comparison is paired.
Choose on val; a rule that wins is then measured once on test with `agegate replay`.

    python -m agegate.benchmarks.fusion_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --buyers 800 \\
        --exclude convert/label-errors-val.txt --out benchmarks/results/fusion-probe/val.json
"""
from __future__ import annotations

import click
import numpy as np

from agegate.convert.replay import summary_figures
from agegate.edge.age_head import AgeHead, fuse, p_under
from agegate.edge.challenge25 import BLOCKED_RISK
from agegate.edge.contracts import CHALLENGE_AGE
from agegate.edge.decision import Decision
from agegate.edge.pipeline import BoxOptions

from .calibration_probe import (at_own_point, buyer_figures, calibration_data, calibration_options, show_progress,
                                write_result)
from .environment import environment


def log_pool(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted geometric mean of distributions, renormalised (the logarithmic opinion pool)."""
    w = np.asarray(weights, np.float64) / np.sum(weights)
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-300, None))
    z = (w[:, None] * logp).sum(axis=0)
    p = np.exp(z - z.max())
    return p / p.sum()


def rule_risks(probs: np.ndarray, weights: np.ndarray, head: AgeHead) -> dict[str, float]:
    """One buyer's window of frames -> P(under 25) under each fusion rule."""
    under = lambda p: float(p_under(p, head, CHALLENGE_AGE)[0])  # noqa: E731
    return {"mixture (the box)": under(fuse(probs, weights)),
            "log-pool": under(log_pool(probs, weights)),
            "median": float(np.median(p_under(probs, head, CHALLENGE_AGE))),
            "mixture, equal weights": under(fuse(probs))}


def recorded_replay(model_path: str, records, threads: int, show: bool):
    """Replay `records` as buyers through the real box. Returns the replay's outcomes and, per track id,
    the frame window (probs, weights) its decision was made from."""
    from agegate.convert.replay import ReplayOptions, load_buyers, run_buyers
    from agegate.edge.pipeline import BoxPipeline
    from agegate.edge.progress import progress
    from agegate.edge.runtime import AgeModel

    class RecordingPipeline(BoxPipeline):
        """The box, keeping each judged track's window of frames (the last judgement is the decision's)."""

        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            self.windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def _judge(self, track):
            if track.dists:
                self.windows[track.track_id] = (np.stack([p for p, _ in track.dists]),
                                                np.array([w for _, w in track.dists], np.float64))
            return super()._judge(track)

    with progress(len(records), "place buyers", "buyer", show) as bar:
        placed, unplaced = load_buyers(records, bar.update)
    pipeline = RecordingPipeline(AgeModel(model_path, threads=threads), BoxOptions(threads=threads))
    with progress(len(placed), "replay", "buyer", show) as bar:
        run = run_buyers(pipeline, placed, ReplayOptions(), bar.update)
    return run, pipeline.windows, unplaced


def buyer_rule_risks(run, windows, head: AgeHead) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(true ages, {rule: risk per buyer}); BLOCKED_RISK where no threshold passes the buyer (decided
    `uncertain`, or never seen), as `replay.buyer_risks` counts them."""
    ages, risks = [], {}
    for o in run.outcomes:
        f = o.final
        ages.append(o.buyer.age)
        blocked = f is None or f.decision == Decision.UNCERTAIN or f.risk is None or f.track_id not in windows
        by_rule = None if blocked else rule_risks(*windows[f.track_id], head)
        if by_rule is not None and abs(by_rule["mixture (the box)"] - f.risk) > 1e-6:
            raise AssertionError(f"recorded window does not give the box's risk ({by_rule} vs {f.risk})")
        for rule in ("mixture (the box)", "log-pool", "median", "mixture, equal weights"):
            risks.setdefault(rule, []).append(BLOCKED_RISK if blocked else by_rule[rule])
    return np.array(ages, np.float64), {k: np.array(v, np.float64) for k, v in risks.items()}


@click.command()
@calibration_options
def main(model, data, split, buyers, exclude_file, max_minors_ok, max_minors_ok_buyer, threads, limit, out) -> None:
    show = show_progress()
    cal = calibration_data(model, data, split, buyers, exclude_file, max_minors_ok, threads, limit, show)
    run, windows, unplaced = recorded_replay(model, cal.buyers, threads, show)
    ages, by_rule = buyer_rule_risks(run, windows, cal.predictions.head)
    rows = {rule: at_own_point(risk, ages, cal, max_minors_ok_buyer) for rule, risk in by_rule.items()}
    result = {"model": model, "split": split, "data": list(data), "buyers": len(run.outcomes),
              "unplaced": len(unplaced), "per_image_point": round(cal.image_point, 6),
              "box_min_sharpness": BoxOptions().min_sharpness,
              "targets": {"minors_ok_image": max_minors_ok, "minors_ok_buyer": max_minors_ok_buyer},
              "rules": rows, "replay": summary_figures(run.summary()),
              "environment": environment()}
    for rule, r in rows.items():
        click.echo(f"{rule:24s} {buyer_figures(r)}; per image 25+ asked {100 * r['per_image']['adults_asked']:.1f} %")
    write_result(out, result)

if __name__ == "__main__":
    main()
