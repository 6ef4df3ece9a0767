"""`agegate calibrate`: make a distribution model's risks honest, then choose its Challenge-25 operating point.

Two steps, both on a named split (val: choose on val, report on test):
1. Temperature: the softmax temperature at which the central 80 % interval holds the true age in
   80 % of images. A network trained with label distributions is rarely calibrated out of the box
   (too sharp where it saw many faces, too flat elsewhere); one scalar fixes the average.
2. Operating point: the largest P(under 25) at which the box still says `ok`, such that at most the
   target share of minors (under 18) is decided ok per image and, with `agegate replay` of the same
   split through the real box, per buyer, each with 90 % confidence (the share's one-sided
   Clopper-Pearson upper bound, challenge25.CONFIDENCE). The lower of the two thresholds is kept, with
   what it costs (25+ asked for ID) at both levels. Every minor of the split is replayed (with a
   sample of the others for the cost): a sample's few minors cannot show a target of 0.5 % (none of
   122 passing bounds the share only at 1.9 %), and on v2.1 the point they allowed passed 0.97 % of
   all 930 test minors per buyer.

The per-buyer point of one replay rests on one draw of the till (order, gaps, poses, camera noise): a
13-year-old's risk moved from 0.130 to 0.069 between two draws and the point with it (2026-12-07). With
`--draws N` each buyer is replayed N times and a minor who passes in one draw of three counts as a third
of one, so the point rests on how likely each face is to pass, not on one draw's luck; the bound still
counts people (902 val minors), not replays.

The model's metadata sidecar is rewritten (atomically) with both; the model file is not touched.

The few minors with the lowest risks set the operating point, so one mislabelled adult among them makes
every adult pay a stricter threshold: the result lists them, per image (`minors_at_the_line`) and per
buyer in the replay (`buyers_at_the_line`), for a person to check
(what that found on v2.1's val split: README, "Challenge 25 as a calibrated risk").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agegate.edge.age_head import AgeHead, covers, p_under
from agegate.edge.challenge25 import (CONFIDENCE, DEFAULT_MAX_MINORS_OK_BUYER, DEFAULT_MAX_MINORS_OK_IMAGE,
                                      OperatingPoint, allowed_minors, by_draw, choose_max_risk, minors_needed,
                                      point_spread, rates, tradeoff_curve, written_point)
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE
from agegate.edge.errors import ModelError, UsageError
from agegate.edge.metadata import read_metadata, sidecar_path, write_metadata
from agegate.train.label_errors import LabelExclusion

from .replay import summary_figures

TARGET_COVERAGE = 0.8


def with_temperature(probs: np.ndarray, head: AgeHead, temperature: float) -> np.ndarray:
    """Probabilities computed at head.temperature, recomputed at another temperature (the logits are
    head.temperature * log p, up to a constant per row)."""
    logits = head.temperature * np.log(np.clip(probs, 1e-300, None))
    return dataclasses.replace(head, temperature=temperature).probabilities(logits)


def coverage(y: np.ndarray, probs: np.ndarray, head: AgeHead, level: float = TARGET_COVERAGE) -> float:
    return float(np.mean(covers(y, probs, head, level)))


def fit_temperature(y: np.ndarray, probs: np.ndarray, head: AgeHead, target: float = TARGET_COVERAGE) -> float:
    """The temperature whose central `target` interval covers `target` of the labels (bisection on
    log T: coverage grows with T)."""
    lo, hi = np.log(0.2), np.log(10.0)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        c = coverage(y, with_temperature(probs, head, float(np.exp(mid))), head, target)
        lo, hi = (mid, hi) if c < target else (lo, mid)
    return round(float(np.exp(0.5 * (lo + hi))), 4)


@dataclass
class CalibrationResult:
    temperature_before: float
    temperature: float
    coverage_before: float
    coverage_after: float
    operating_point: OperatingPoint
    image_curve: list[dict] = field(default_factory=list)
    buyer_curve: list[dict] = field(default_factory=list)
    replay: dict[str, Any] | None = None
    minors_at_the_line: list[dict] = field(default_factory=list)
    buyers_at_the_line: list[dict] = field(default_factory=list)  # the same, per buyer in the replay
    # Where each level's point would fall on other draws of as many minors and adults (challenge25.point_spread)
    spread: dict[str, dict] = field(default_factory=dict)
    more_replays: list[dict] = field(default_factory=list)  # the figures of draws 2, 3, ... (--draws), as `replay`

    def to_json(self) -> dict[str, Any]:
        return {"temperature_before": self.temperature_before, "temperature": self.temperature,
                "coverage_80_before": round(self.coverage_before, 4), "coverage_80_after": round(self.coverage_after, 4),
                "operating_point": self.operating_point.to_dict(), "image_curve": self.image_curve,
                "buyer_curve": self.buyer_curve, "minors_at_the_line": self.minors_at_the_line,
                "buyers_at_the_line": self.buyers_at_the_line, "point_spread": self.spread,
                "replay": None if self.replay is None else summary_figures(self.replay),
                **({"more_replays": self.more_replays} if self.more_replays else {})}

    def render(self) -> str:
        op = self.operating_point
        lines = [f"temperature {self.temperature_before:g} -> {self.temperature:g}: the 80 % interval held the "
                 f"true age in {self.coverage_before:.1%} -> {self.coverage_after:.1%} of images",
                 f"operating point: {op.describe()}"]
        if op.looser_than_default:
            lines.append("  note: looser than the default targets (--allow-looser); recorded in the metadata")
        for key, sp in self.spread.items():
            (p5, _, p95), asked = sp["point"], sp["adults_asked"]
            lines.append(f"  {key.replace('_', ' ')}, on other draws of as many minors and adults (bootstrap, "
                         f"5-95 %): point {p5:.3f}-{p95:.3f}"
                         + (f", 25+ asked {asked[0]:.1%}-{asked[2]:.1%}" if asked else ""))
        for title, line in (("minors at the line", self.minors_at_the_line),
                            ("minor buyers at the line (replay)", self.buyers_at_the_line)):
            if line:
                lines.append(f"{title} (lowest risk first; they set the operating point, so check their labels):")
                lines += [f"  {passes_text(m)}  risk {m['risk']:.3f}  age {m['age']:g}  "
                          + (f"estimate {m['estimate']:.1f}  " if m.get("estimate") is not None else "") + m["path"]
                          for m in line]
        return "\n".join(lines)


def minors_at_the_line(paths: list[str], ages: np.ndarray, estimates: np.ndarray | None, risk: np.ndarray,
                       max_risk: float, beyond: int = 5) -> list[dict[str, Any]]:
    """The minors decided ok at `max_risk` (risk <= max_risk) and the next `beyond` above it, lowest risk first:
    the images (or buyers) whose labels decide how strict the operating point must be. `estimates`: ages
    estimated, or None (a replay's buyers: their risk is what was decided on). With risks of several draws
    (`by_draw`), a minor passes who passed in any draw: `risk` is their lowest, `risks` each draw's and
    `passed_draws` in how many they passed."""
    ages, risk = np.asarray(ages, np.float64), by_draw(risk)
    lowest = risk.min(axis=0)
    minors = np.flatnonzero(ages < MINOR_AGE)
    order = minors[np.argsort(lowest[minors], kind="stable")]
    n_pass = int(np.sum(lowest[minors] <= max_risk))
    return [{"path": paths[i], "age": float(ages[i]),
             "estimate": None if estimates is None else round(float(estimates[i]), 2),
             "risk": round(float(lowest[i]), 4), "passes": bool(lowest[i] <= max_risk),
             **({} if len(risk) == 1 else {"risks": [round(float(r), 4) for r in risk[:, i]],
                                           "passed_draws": int(np.sum(risk[:, i] <= max_risk))})}
            for i in order[: n_pass + beyond]]


def passes_text(m: dict) -> str:
    """'passes' or 'asked ', or with several draws 'passes 1/3' (in how many draws the minor passed; 0/3: asked in
    every one)."""
    if "passed_draws" in m:
        return f"passes {m['passed_draws']}/{len(m['risks'])}"
    return "passes" if m["passes"] else "asked "


def calibration_buyers(ages, others: int, seed: int = 0) -> list[int]:
    """Which photos of the split become buyers in calibrate's replay (indices, in data order): every minor
    (under 18), since they decide the operating point and a target of 0.5 % needs hundreds of them, and a
    seeded sample of `others` of the rest, which measures what the point costs adults."""
    ages = np.asarray(ages, np.float64)
    minors, rest = np.flatnonzero(ages < MINOR_AGE), np.flatnonzero(ages >= MINOR_AGE)
    if others < len(rest):
        rest = rest[np.random.default_rng(seed).permutation(len(rest))[:others]]
    return sorted(np.concatenate([minors, rest]).tolist())


def buyers_to_replay(records: list, gone: set[tuple[str, int | None]], others: int, seed: int = 0) -> list:
    """The records calibrate replays as buyers: every minor of the split and `others` of the rest (seeded,
    `calibration_buyers`), less the rows left out as mislabelled (`gone`: file and label line)."""
    kept = [r for r in records if (str(r.path), r.line) not in gone]
    return [kept[i] for i in calibration_buyers([r.age for r in kept], others, seed)]


def check_targets(max_image: float, max_buyer: float | None, allow_looser: bool) -> bool:
    """True when a target is looser than the defaults (allowed only with allow_looser)."""
    looser = max_image > DEFAULT_MAX_MINORS_OK_IMAGE or (max_buyer is not None and max_buyer > DEFAULT_MAX_MINORS_OK_BUYER)
    if looser and not allow_looser:
        raise UsageError(f"a target above the defaults ({DEFAULT_MAX_MINORS_OK_IMAGE:.1%} of minors ok per image, "
                         f"{DEFAULT_MAX_MINORS_OK_BUYER:.1%} per buyer) passes more minors; pass --allow-looser to "
                         f"record that choice in the model")
    return looser


def check_not_a_release(model_path: Path) -> None:
    """Refuse a model inside an installed release or an unpacked bundle (its manifest beside it): calibrating
    rewrites the sidecar, which the signed manifest hashes, so the box's live release would read as damaged."""
    from agegate.edge.bundle_format import MANIFEST

    if (Path(model_path).parent / MANIFEST).exists():
        raise UsageError(f"{model_path} is part of a signed release ({MANIFEST} beside it): calibrating would rewrite "
                         f"its sidecar and the release would read as damaged; copy the model and its .json out, "
                         f"calibrate the copy, and ship it as a new bundle")


def calibrate(model_path: Path, predictions, buyer_replay, *, max_minors_ok_image: float = DEFAULT_MAX_MINORS_OK_IMAGE,
              max_minors_ok_buyer: float | None = DEFAULT_MAX_MINORS_OK_BUYER, allow_looser: bool = False,
              chosen_on: str = "", confidence: float | None = CONFIDENCE,
              excluded: list[LabelExclusion] = (), box_rules: dict[str, float] | None = None,
              allow_unshown: bool = False) -> CalibrationResult:
    """Fit the temperature on `predictions` (evaluate.Predictions of the split), then the operating point;
    `buyer_replay(meta) -> [replay summary, ...]` runs the box over buyers with the recalibrated metadata, once
    per draw, the same buyers each time (`replay.replay_draws`; None: per-image only; it leaves `excluded` out
    itself); with several draws each minor counts by the share of draws they pass in. `excluded` images are
    left out of both and recorded with the point; `box_rules` (BoxOptions.decision_rules of the replay's box) is
    recorded with a per-buyer point. Writes the sidecar and returns what was chosen. A target the data has too
    few minors to show (even none passing) is refused, the sidecar unchanged, unless `allow_unshown`
    (`target_shown` then says so)."""
    check_not_a_release(model_path)
    meta = read_metadata(model_path)
    if not meta.head.is_distribution:
        raise ModelError(f"{model_path}: a regression model has no age distribution to calibrate; train with "
                         f"--head distribution")
    looser = check_targets(max_minors_ok_image, max_minors_ok_buyer, allow_looser)
    if excluded:  # the CLI checked that each names one image of the split; --limit may have left it out
        predictions = predictions.without({k for k in predictions.keys if any(e.matches(*k) for e in excluded)})
    y, head = predictions.y_true, meta.head
    before = coverage(y, predictions.probs, head)
    t = fit_temperature(y, predictions.probs, head)
    probs = with_temperature(predictions.probs, head, t)
    new_head = dataclasses.replace(head, temperature=t)
    risk = p_under(probs, new_head, CHALLENGE_AGE)
    t_image = choose_max_risk(risk, y, max_minors_ok_image, confidence)
    measured = {"per_image": rates(risk, y, 0.0)}  # filled below at the final threshold
    replay_summary, buyer_curve, t_buyer, draws = None, [], None, []
    if buyer_replay is not None and max_minors_ok_buyer is not None:
        draws = buyer_replay(dataclasses.replace(meta, head=new_head, operating_point=None))
        replay_summary = draws[0]
        ages, b = buyer_matrix(draws)
        t_buyer = choose_max_risk(b, ages, max_minors_ok_buyer, confidence)
        buyer_curve = per_buyer_curve(draws)
    max_risk = written_point(t_image if t_buyer is None else min(t_image, t_buyer))  # as the box will read it
    measured["per_image"] = rates(risk, y, max_risk)
    targets = {"per_image": max_minors_ok_image}
    if replay_summary is not None:
        measured["per_buyer"] = rates(b, ages, max_risk)
        if len(draws) > 1:
            measured["per_buyer"]["draws"] = len(draws)
        targets["per_buyer"] = max_minors_ok_buyer
    for key, target in targets.items():
        # With few minors even none passing cannot show a small target; say so rather than imply it was met.
        measured[key]["target_shown"] = check_shown(measured[key]["n_minors"], target, confidence, key, chosen_on,
                                                    model_path, refuse=not allow_unshown)
    op = OperatingPoint(max_risk, max_minors_ok_image, max_minors_ok_buyer if t_buyer is not None else None,
                        measured, chosen_on, looser, confidence,
                        [e.to_dict() for e in excluded] or None, box_rules if replay_summary is not None else None)
    write_metadata(model_path, dataclasses.replace(meta, head=new_head, operating_point=op))
    spread = {"per_image": point_spread(risk, y, max_minors_ok_image, confidence)}
    if replay_summary is not None:
        spread["per_buyer"] = point_spread(b, ages, max_minors_ok_buyer, confidence)
    return CalibrationResult(head.temperature, t, before, coverage(y, probs, new_head), op,
                             tradeoff_curve(risk, y), buyer_curve, replay_summary,
                             minors_at_the_line(predictions.paths, y, predictions.y_pred, risk, max_risk),
                             [] if replay_summary is None else
                             minors_at_the_line(replay_summary["buyer_paths"], ages, None, b, max_risk),
                             spread, [summary_figures(d) for d in draws[1:]])


def per_buyer_curve(draws: list[dict]) -> list[dict]:
    """The per-buyer trade-off of replays of the same buyers: one draw's own `risk_curve` (as `agegate replay`
    reports it), or over several the curve of every draw together (`tradeoff_curve` of `buyer_matrix`), each minor
    counted by the share of draws they pass in. calibrate and qa draw it so."""
    if len(draws) == 1 or any("buyer_risks" not in d for d in draws):
        return draws[0].get("risk_curve", [])
    ages, risks = buyer_matrix(draws)
    return tradeoff_curve(risks, ages)


def buyer_matrix(draws: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(true ages, risks as (draws, buyers)) from replay summaries of the same buyers (`replay.replay_draws`)."""
    if any("buyer_risks" not in d for d in draws):
        raise ModelError("the replay decided no buyer with a risk; are faces found in this data?")
    if any(d["buyer_paths"] != draws[0]["buyer_paths"] for d in draws):
        raise ModelError("the replay's draws hold different buyers; each draw must replay the same buyers in order")
    rows = [np.array(d["buyer_risks"], np.float64) for d in draws]
    return rows[0][:, 0], np.stack([r[:, 1] for r in rows])


def check_shown(n_minors: int, target: float, confidence: float | None, key: str, chosen_on: str, model_path: Path,
                refuse: bool = True) -> bool:
    """Whether `n_minors` can show `target` (even none passing); with `refuse`, a UsageError when they cannot: the
    box would carry a point that says nothing of new buyers (6 minors once set P(under 25) > 0.998, which lets most
    20-year-olds buy). calibrate asks before its work (from the labels) and after it (from what was evaluated)."""
    shown = n_minors > 0 and allowed_minors(n_minors, target, confidence) is not None
    if not shown and refuse:
        need = minors_needed(target, confidence)
        raise UsageError(
            f"{n_minors} minor(s) in {chosen_on or 'the data'} cannot show at most {target:.1%} of minors decided "
            f"ok {key.replace('_', ' ')}" + (f" with {confidence:.0%} confidence" if confidence else "")
            + ", even with none passing" + (f" (it takes {need} or more)" if need else " (no number can)")
            + f"; {sidecar_path(model_path).name} is unchanged. Choose on more data (the val splits of every set), "
              f"or pass --allow-unshown to write the point anyway (recorded: target_shown false)")
    return shown


def curve_needs_distribution(meta) -> None:
    """A Challenge-25 curve (`--curve`) is drawn over P(under 25): refuse a regression model before any work."""
    if not meta.head.is_distribution:
        raise UsageError("--curve needs a distribution model (train --head distribution); this one gives one age")


def op_markers(op: OperatingPoint | None, where: str = "",
               keys: tuple[str, ...] = ("per_image", "per_buyer")) -> list[tuple[str, float, float]]:
    """(label, adults asked, minors ok) of an operating point as measured when it was chosen, for `keys`."""
    out = []
    for key in keys:
        m = ((op.measured if op else None) or {}).get(key)
        if m and m.get("adults_asked") is not None and m.get("minors_ok") is not None:
            out.append((f"operating point, {key.replace('_', ' ')}{where}", m["adults_asked"], m["minors_ok"]))
    return out


def plot_tradeoff(path: Path, image_curve: list[dict], buyer_curve: list[dict], op: OperatingPoint | None,
                  markers: list[tuple[str, float, float]] | None = None) -> None:
    """The PNG of `draw_tradeoff`."""
    from agegate.edge.figures import save_figure

    save_figure(draw_tradeoff(image_curve, buyer_curve, op, markers), path)


def draw_tradeoff(image_curve: list[dict], buyer_curve: list[dict], op: OperatingPoint | None,
                  markers: list[tuple[str, float, float]] | None = None):
    """Minors decided ok against 25+ asked, per image and per buyer, with the operating point marked
    (NIST's Challenge-25 plot) and the targets it was chosen for as dotted lines, in the colour of the curve they
    bound (only for a curve drawn). Used by calibrate, eval, replay and qa; `markers` default to where the
    operating point was chosen."""
    from agegate.edge.figures import pyplot

    fig, ax = pyplot().subplots(figsize=(6, 4.2))
    targets = (None, None) if op is None else (op.target_minors_ok_image, op.target_minors_ok_buyer)
    for curve, label, colour, target in ((image_curve, "per image", "#3b6ea8", targets[0]),
                                         (buyer_curve, "per buyer", "#c0392b", targets[1])):
        pts = [(c["adults_asked"], c["minors_ok"]) for c in curve if c["adults_asked"] is not None
               and c["minors_ok"] is not None]
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot([100 * x for x in xs], [100 * v for v in ys], "-", color=colour, label=label)
            if target is not None:
                ax.axhline(100 * target, color=colour, linestyle=":", linewidth=1,
                           label=f"target {label}: at most {100 * target:g} % of minors ok")
    for (label, x, y), marker in zip(op_markers(op) if markers is None else markers, "os^v"):
        if x is not None and y is not None:  # a share of no one (QA data without minors, say) is not a point
            ax.plot(100 * x, 100 * y, marker, color="black", label=label)
    ax.set_xlabel("25+ asked for ID (%)")
    ax.set_ylabel("minors (under 18) decided ok (%)")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_title("Challenge 25 trade-off" + (f"; ID when P(under 25) > {op.max_risk:.3f}" if op else ""))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:  # data without minors or without adults: an empty chart says why
        ax.text(0.5, 0.5, "these data lack minors or adults (25+): no trade-off to draw", ha="center",
                va="center", transform=ax.transAxes, fontsize=9)
    return fig
