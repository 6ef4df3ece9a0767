"""Is the Challenge-25 cost in how the box reads the distribution, or in the model? And has the model learnt
the line on the images it trained on?

The box asks for ID when P(under 25), the distribution's mass below 25 at the model's calibrated temperature,
is over the operating point. Per split (every image through the box's detector, as the box reads it), this
probe gives the tail that sets a per-buyer point (`ensemble_probe.tail`: 25+ asked when k minors may pass;
calibrate's 0.5 % with 90 % confidence lets 1 of 902 val minors pass) and, at the model's own operating point,
the minors that pass, with their estimates: a person can look at them (a wrong label, a wrong face).
On the first split only, the same tail for other readings of the same distributions: P(under c) at another
temperature or another cut age c, a low quantile, and the mean. A reading that asks fewer adults at every k
would be a free gain for the box; one that wins at a single k is the noise of a few faces.

Given `--split train` too, the same figures on the training images tell memorised from unlearnt: a model
that had overfitted the line would pass far fewer minors and ask far fewer adults there than on val.

    python -m agegate.benchmarks.decision_probe edge/assets/default_model.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val --split train \\
        --out benchmarks/results/decision-probe-v2.3.json
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.evaluate import Predictions, evaluate_sets, read_splits
from agegate.convert.metrics import age_metrics
from agegate.edge.age_head import AgeHead, p_under
from agegate.edge.challenge25 import rates
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment
from .ensemble_probe import tail

TEMPERATURE_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.5)  # times the model's calibrated temperature
CUT_AGES = (21, 23, 25, 27, 30)
QUANTILES = (0.1, 0.2, 0.3)


def at_temperature(probs: np.ndarray, head: AgeHead, temperature: float) -> np.ndarray:
    """Distributions given at the head's temperature, re-read at another: the logits are the head's
    temperature times the log-probabilities, up to a constant per image that the softmax drops."""
    logits = head.temperature * np.log(np.clip(np.asarray(probs, np.float64), 1e-300, None))
    return head.probabilities(logits, temperature)


def quantile_age(probs: np.ndarray, head: AgeHead, q: float) -> np.ndarray:
    """The age below which each distribution holds a share `q` of its mass (the first bin reaching it)."""
    return head.ages[np.argmax(np.cumsum(probs, axis=1) >= q, axis=1)].astype(np.float64)


def readings(probs: np.ndarray, head: AgeHead) -> dict[str, np.ndarray]:
    """Each reading as a risk: higher means more likely under 25 (ages negated, so a low age is high risk).
    The first is the box's."""
    out = {f"P(under {CHALLENGE_AGE:g}) at the model's temperature (the box)": p_under(probs, head, CHALLENGE_AGE)}
    for f in TEMPERATURE_FACTORS:
        tempered = probs if f == 1.0 else at_temperature(probs, head, f * head.temperature)
        for cut in CUT_AGES:
            if f != 1.0 or cut != CHALLENGE_AGE:
                out[f"P(under {cut}) at temperature x{f:g}"] = p_under(tempered, head, cut)
    for q in QUANTILES:
        out[f"{q:g} quantile (negated)"] = -quantile_age(probs, head, q)
    out["mean (negated)"] = -(probs @ head.ages)
    return out


def split_figures(p: Predictions) -> dict:
    """The box's reading on one split: the tail, and what the model's own operating point does per image."""
    risk = p.risk
    minors, adults = p.y_true < MINOR_AGE, p.y_true >= CHALLENGE_AGE
    out: dict = {"n": len(p.y_true), "minors": int(minors.sum()), "adults_25plus": int(adults.sum()),
                 "mae": age_metrics(p.y_true, p.y_pred)["mae"],
                 "asked_25plus_at_k_minors_ok": tail(p.y_true, risk)}
    if p.operating_point is not None:
        point = p.operating_point.max_risk
        passing = np.flatnonzero(minors & (risk <= point))
        out["operating_point"] = point
        out["minors_ok"] = len(passing)
        at_point = rates(risk, p.y_true, point, upper=False)  # the shares eval and calibrate report
        out["minors_ok_share"] = round(at_point["minors_ok"], 5)
        out["asked_25plus_share"] = round(at_point["adults_asked"], 4)
        out["minors_passing"] = [{"path": p.paths[i], "line": p.lines[i], "age": float(p.y_true[i]),
                                  "estimate": round(float(p.y_pred[i]), 2), "risk": round(float(risk[i]), 4)}
                                 for i in passing[np.argsort(p.y_true[passing], kind="stable")]]
    return out


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", "splits", type=SPLIT_CHOICE, multiple=True, default=("val",), show_default=True,
              help="Repeat (val, then train): the readings are compared on the first.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(model: str, data: tuple[str, ...], splits: tuple[str, ...], out: str | None) -> None:
    result: dict = {"model": model, "data": list(data), "splits": {}, "environment": environment()}
    for n, split in enumerate(splits):
        p = Predictions.concat([r.predictions for r in evaluate_sets(
            model, read_splits(list(data), "auto", None, split), detect=True)])
        if p.probs is None:
            raise click.UsageError(f"{model} gives one age, not a distribution (train --head distribution)")
        fig = split_figures(p)
        result["splits"][split] = fig
        at_point = "" if "operating_point" not in fig else (
            f"; at its point {fig['operating_point']:.3f}: {fig['minors_ok']} of {fig['minors']} minors ok, "
            f"{100 * fig['asked_25plus_share']:.1f} % of 25+ asked")
        click.echo(f"{split}: MAE {fig['mae']:.2f}; 25+ asked at k minors ok: " + ", ".join(
            f"{k}: {100 * v:.1f} %" for k, v in fig["asked_25plus_at_k_minors_ok"].items()) + at_point)
        if n == 0:
            rows = {name: tail(p.y_true, r) for name, r in readings(p.probs, p.head).items()}
            result["readings"] = {"split": split, "rows": rows}
            for name, t in rows.items():
                click.echo(f"  {name:52s} " + "  ".join(f"{100 * v:5.1f}" for v in t.values()))
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
