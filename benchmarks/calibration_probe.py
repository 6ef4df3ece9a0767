"""What the box-side probes (`fusion_probe.py`, `quality_gate_probe.py`) share with `agegate calibrate`: the
split read once, the rows a person found mislabelled left out, the per-image operating point from `eval` of the
split, calibrate's buyers (every minor and N others), and each variant's own operating point chosen the way
calibrate chooses it. A probe varies one thing the box does and replays those buyers once; the comparison is
then what each variant's own point costs adults for the minors it passes.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from agegate.convert.calibrate import buyers_to_replay
from agegate.convert.evaluate import Predictions, evaluate_sets, read_splits
from agegate.edge.challenge25 import (DEFAULT_MAX_MINORS_OK_BUYER, DEFAULT_MAX_MINORS_OK_IMAGE, choose_max_risk,
                                      rates, written_point)
from agegate.edge.cli_types import threads_option
from agegate.train.cli_options import SPLIT_CHOICE
from agegate.train.label_errors import match_exclusions, read_label_exclusions


@dataclass
class CalibrationData:
    predictions: Predictions  # eval of the split, less the excluded rows
    image_point: float  # the per-image operating point (calibrate's, at --max-minors-ok), as written
    buyers: list  # the records calibrate replays as buyers


def calibration_data(model: str, data: tuple[str, ...], split: str, others: int, exclude_file: str | None,
                     max_minors_ok: float, threads: int, limit: int | None, show: bool) -> CalibrationData:
    excluded = read_label_exclusions(Path(exclude_file)) if exclude_file else []
    splits = read_splits(list(data), "auto", None, split, limit)
    records = [r for s in splits for r in s.records]
    gone = match_exclusions(excluded, [(str(r.path), r.line) for r in records], exclude_file) if excluded else set()
    preds = Predictions.concat([s.predictions for s in evaluate_sets(model, splits, threads=threads, progress=show)])
    if preds.probs is None:
        raise click.UsageError(f"{model} gives one age, not a distribution (train --head distribution)")
    preds = preds.without(gone)
    return CalibrationData(preds, written_point(choose_max_risk(preds.risk, preds.y_true, max_minors_ok)),
                           buyers_to_replay(records, gone, others))


def at_own_point(risk: np.ndarray, ages: np.ndarray, data: CalibrationData, max_minors_ok_buyer: float) -> dict:
    """A variant's buyer risks at its own operating point: the lower of the per-image point and the per-buyer
    one (with 90 % confidence), as calibrate chooses it; what it does per buyer and per image."""
    t_buyer = choose_max_risk(risk, ages, max_minors_ok_buyer)
    point = written_point(min(data.image_point, t_buyer))  # as calibrate writes it
    return {"operating_point": point, "per_buyer_point": written_point(t_buyer),
            "per_buyer": rates(risk, ages, point),
            "per_image": rates(data.predictions.risk, data.predictions.y_true, point)}


def buyer_figures(r: dict) -> str:
    """One line of what a variant's own point does per buyer."""
    b = r["per_buyer"]
    return (f"point {r['operating_point']:.4f}: minors ok {b['minors_ok'] * b['n_minors']:.0f}/{b['n_minors']}, "
            f"25+ asked {100 * b['adults_asked']:.1f} % of {b['n_adults']}")


def write_result(out: str | None, result: dict) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


def calibration_options(f):
    """The options every such probe takes (calibrate's own, where calibrate has them)."""
    for option in reversed([
        click.argument("model", type=click.Path(exists=True, dir_okay=False)),
        click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True)),
        click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True),
        click.option("--buyers", default=800, show_default=True, help="Others replayed beside every minor "
                     "(calibrate's)."),
        click.option("--exclude", "exclude_file", type=click.Path(exists=True, dir_okay=False),
                     help="Mislabelled images to leave out (calibrate's --exclude)."),
        click.option("--max-minors-ok", default=DEFAULT_MAX_MINORS_OK_IMAGE, show_default=True),
        click.option("--max-minors-ok-buyer", default=DEFAULT_MAX_MINORS_OK_BUYER, show_default=True),
        threads_option,
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N images of each set (a quick look)."),
        click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here."),
    ]):
        f = option(f)
    return f


def show_progress() -> bool:
    return sys.stderr.isatty()
