"""Would two models together cut the Challenge-25 cost? Each model alone against the mean of their age
distributions, on one split, every image through the box's detector (each model with its own crop,
test-time augmentation, as the box reads it).

Per model and for the mean of their estimates (each model's estimate is the mean of its distribution at
temperature 1, so this is the mean of the mean distribution): MAE per set, and the share of 25+ asked for ID at the lowest point-estimate
threshold that passes at most 1 % of minors (`convert.metrics.challenge25`, eval's `safe_flag_rate_25plus`).
For distribution models also the tail (`asked_25plus_at_k_minors_ok`): 25+ asked per image when P(under 25) of
the (mean) distribution may let k minors pass, for the few k that set a per-buyer operating point (calibrate's
0.5 % with 90 % confidence allows 1 of 902 val minors): a bulk gain that misses the oldest-looking minors does
not move that point (MODEL_HISTORY.md, "What sets the per-buyer point").
Val only: it tells whether a two-model idea (an ensemble on the box, or distilling one into one model) is
worth its cost; test figures come from `agegate eval`/`replay` of what ships.

    python -m agegate.benchmarks.ensemble_probe edge/assets/default_model.tflite OTHER.tflite \\
        --data ../shared/datasets/utkface --data ../shared/datasets/aaf --split val \\
        --out benchmarks/results/ensemble-probe-val.json
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.evaluate import predict, read_splits
from agegate.convert.metrics import age_metrics, challenge25
from agegate.edge.age_head import p_under
from agegate.edge.contracts import CHALLENGE_AGE, MINOR_AGE
from agegate.train.cli_options import SPLIT_CHOICE

from .environment import environment


TAIL_MINORS = (0, 1, 2, 5, 9)


def tail(y_true: np.ndarray, risk: np.ndarray, ks: tuple[int, ...] = TAIL_MINORS) -> dict[str, float]:
    """25+ share asked for ID when the operating point (ok at P(under 25) below it) is the highest that lets at
    most k minors pass: just under the (k+1)-th lowest minor's risk."""
    minors = np.sort(risk[y_true < MINOR_AGE])
    adults = risk[y_true >= CHALLENGE_AGE]
    return {str(k): round(float(np.mean(adults >= minors[k])) if k < len(minors) else 0.0, 4) for k in ks}


def _figures(y_true: np.ndarray, y_pred: np.ndarray, sets: np.ndarray, risk: np.ndarray | None = None) -> dict:
    c25 = challenge25(y_true, y_pred)
    out = {"mae": age_metrics(y_true, y_pred)["mae"], "asked_25plus_at_1pct_minors": c25["safe_flag_rate_25plus"],
           "safe_threshold": c25["safe_threshold"]}
    if risk is not None:
        out["asked_25plus_at_k_minors_ok"] = tail(y_true, risk)
    for name in dict.fromkeys(sets):
        mine = sets == name
        out[f"mae_{name}"] = age_metrics(y_true[mine], y_pred[mine])["mae"]
    return out


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", type=SPLIT_CHOICE, default="val", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON here.")
def main(models: tuple[str, ...], data: tuple[str, ...], split: str, out: str | None) -> None:
    if len(models) < 2:
        raise click.UsageError("give two or more models")
    splits = read_splits(list(data), "auto", None, split)
    records = [r for s in splits for r in s.records]
    source = {str(r.path): s.name for s in splits for r in s.records}
    age = {str(r.path): r.age for r in records}
    preds = [predict(m, records, detect=True, desc=Path(m).name) for m in models]
    # Only the images every model found a face in, so each row of the table is over the same faces.
    common = sorted(set.intersection(*(set(p.paths) for p in preds)))
    estimates, dists = [], []
    for p in preds:
        at = {q: i for i, q in enumerate(p.paths)}
        estimates.append(np.array([p.y_pred[at[q]] for q in common]))
        dists.append(None if p.probs is None else p.probs[[at[q] for q in common]])
    y_true = np.array([age[q] for q in common], np.float64)
    sets = np.array([source[q] for q in common])
    heads = [p.head for p in preds]
    same_bins = all(d is not None for d in dists) and len({(h.min_age, h.n_bins) for h in heads}) == 1
    risks = [p_under(d, h, CHALLENGE_AGE) if same_bins else None for d, h in zip(dists, heads)]
    rows = {Path(m).name: _figures(y_true, e, sets, r) for m, e, r in zip(models, estimates, risks)}
    # A model's estimate is the mean of its distribution, so this is the mean of the mean distribution; its risk
    # is that of the mean distribution (each model's at its own calibrated temperature).
    mean_risk = p_under(np.mean(dists, axis=0), heads[0], CHALLENGE_AGE) if same_bins else None
    rows["mean of the models"] = _figures(y_true, np.mean(estimates, axis=0), sets, mean_risk)
    result = {"split": split, "data": list(data), "n": int(len(common)), "models": list(models), "rows": rows,
              "environment": environment()}
    for name, r in rows.items():
        per_set = ", ".join(f"{k[4:]} {v:.2f}" for k, v in r.items() if k.startswith("mae_"))
        tail_text = "" if "asked_25plus_at_k_minors_ok" not in r else "; by P(under 25), at k minors ok: " + ", ".join(
            f"{k}: {100 * v:.1f} %" for k, v in r["asked_25plus_at_k_minors_ok"].items())
        click.echo(f"{name}: MAE {r['mae']:.2f} ({per_set}); 25+ asked at <= 1 % minors passed: "
                   f"{100 * r['asked_25plus_at_1pct_minors']:.1f} %{tail_text}")
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
