"""Would the counts by age band (the marketing use) come closer to the truth if corrected for the model's known
confusions? The textbook correction ("adjusted classify and count", here by EM as in Saerens et al. 2002) fits
P(counted band | true band) on labelled data and solves for the true shares behind a set of counted ones. It
helps when the counted shares are far off and the confusions are stable; this probe measures both on our data.

Inputs are `agegate eval --predictions` files, one per data set and split: the confusions are fitted on the
`--fit` files (val), alone and together, and applied to each `--apply` file (test).

    agegate eval --model edge/assets/default_model.tflite --data ../shared/datasets/utkface --split val \\
        --predictions utkface-val.csv        # and aaf-val.csv, utkface-test.csv, aaf-test.csv likewise
    python -m agegate.benchmarks.band_count_probe --fit utkface-val.csv --fit aaf-val.csv \\
        --apply utkface-test.csv --apply aaf-test.csv --out benchmarks/results/band-count/probe-test.json
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import click
import numpy as np

from agegate.convert.metrics import shares_apart
from agegate.edge.bands import BAND_LABELS, band_index

from .environment import environment

K = len(BAND_LABELS)


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(true band index, counted band index) of each image an eval --predictions file scored (skipped rows out)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r.get("skipped")]
    return (band_index(np.array([float(r["age"]) for r in rows])),
            band_index(np.array([float(r["predicted"]) for r in rows])))


def confusion(true: np.ndarray, counted: np.ndarray, prior: float = 1e-3) -> np.ndarray:
    """C[counted, true] = P(counted band | true band), each column summing to 1 (a tiny prior keeps an empty
    band's column defined)."""
    c = np.full((K, K), prior)
    np.add.at(c, (counted, true), 1.0)
    return c / c.sum(axis=0, keepdims=True)


def adjusted_shares(counts: np.ndarray, c: np.ndarray, iterations: int = 500) -> np.ndarray:
    """The true band shares most likely behind `counts` given the confusions `c` (EM from uniform shares)."""
    shares = np.full(K, 1.0 / K)
    for _ in range(iterations):
        post = c * shares[None, :]
        post /= post.sum(axis=1, keepdims=True)
        shares = (counts[:, None] * post).sum(axis=0) / counts.sum()
    return shares


def off(shares: np.ndarray, true: np.ndarray) -> dict:
    """Share of people in another band, net (`metrics.shares_apart`), and the largest band difference."""
    return {"total_variation": round(shares_apart(shares, true), 4),
            "worst_points": round(float(100 * np.abs(shares - true).max()), 2)}


@click.command()
@click.option("--fit", "fits", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="eval --predictions of a data set's val split; repeat (fitted alone and all together).")
@click.option("--apply", "applies", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="eval --predictions of a data set's test split; repeat.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSON here too.")
def main(fits: tuple[str, ...], applies: tuple[str, ...], out: str | None) -> None:
    fitted = {Path(f).stem: read_predictions(f) for f in fits}
    if len(fitted) > 1:
        fitted["all"] = tuple(np.concatenate(parts) for parts in zip(*fitted.values()))
    rows = []
    for name, (t_fit, c_fit) in fitted.items():
        c = confusion(t_fit, c_fit)
        for a in applies:
            true_idx, counted_idx = read_predictions(a)
            true = np.bincount(true_idx, minlength=K) / len(true_idx)
            counts = np.bincount(counted_idx, minlength=K).astype(np.float64)
            rows.append({"fitted_on": name, "applied_to": Path(a).stem, "images": int(len(true_idx)),
                         "counted": off(counts / counts.sum(), true),
                         "adjusted": off(adjusted_shares(counts, c), true)})
    result = {"kind": "band_count_probe", "bands": list(BAND_LABELS), "rows": rows, "environment": environment()}
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    for r in rows:
        click.echo(f"fitted on {r['fitted_on']:<14} applied to {r['applied_to']:<14} counted off by "
                   f"{r['counted']['total_variation']:.1%} (worst {r['counted']['worst_points']:.1f} points), adjusted "
                   f"{r['adjusted']['total_variation']:.1%} (worst {r['adjusted']['worst_points']:.1f})")


if __name__ == "__main__":
    main()
