"""Would two models together cut the Challenge-25 cost? Each model alone against the mean of their age
distributions, on one split, every image through the box's detector (each model with its own crop,
test-time augmentation, as the box reads it).

Per model and for the mean of their estimates (each model's estimate is the mean of its distribution at
temperature 1, so this is the mean of the mean distribution): MAE per set, and the share of 25+ asked for ID at the lowest point-estimate
threshold that passes at most 1 % of minors (`convert.metrics.challenge25`, eval's `safe_flag_rate_25plus`).
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

from .environment import environment


def _figures(y_true: np.ndarray, y_pred: np.ndarray, sets: np.ndarray) -> dict:
    c25 = challenge25(y_true, y_pred)
    out = {"mae": age_metrics(y_true, y_pred)["mae"], "asked_25plus_at_1pct_minors": c25["safe_flag_rate_25plus"],
           "safe_threshold": c25["safe_threshold"]}
    for name in dict.fromkeys(sets):
        mine = sets == name
        out[f"mae_{name}"] = age_metrics(y_true[mine], y_pred[mine])["mae"]
    return out


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True))
@click.option("--split", default="val", show_default=True)
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
    estimates = []
    for p in preds:
        at = {q: i for i, q in enumerate(p.paths)}
        estimates.append(np.array([p.y_pred[at[q]] for q in common]))
    y_true = np.array([age[q] for q in common], np.float64)
    sets = np.array([source[q] for q in common])
    rows = {Path(m).name: _figures(y_true, e, sets) for m, e in zip(models, estimates)}
    # A model's estimate is the mean of its distribution, so this is the mean of the mean distribution.
    rows["mean of the models"] = _figures(y_true, np.mean(estimates, axis=0), sets)
    result = {"split": split, "data": list(data), "n": int(len(common)), "models": list(models), "rows": rows,
              "environment": environment()}
    for name, r in rows.items():
        per_set = ", ".join(f"{k[4:]} {v:.2f}" for k, v in r.items() if k.startswith("mae_"))
        click.echo(f"{name}: MAE {r['mae']:.2f} ({per_set}); 25+ asked at <= 1 % minors passed: "
                   f"{100 * r['asked_25plus_at_1pct_minors']:.1f} %")
    if out:
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
