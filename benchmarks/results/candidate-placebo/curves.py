#!/usr/bin/env python3
"""The per-buyer trade-off of several calibrate runs side by side, at the few minors that set the point.

Usage: curves.py OUT.png NAME=CALIBRATE.json ...

For each run: the share of adult val buyers asked for ID when at most k of the val minor buyers are decided
`ok` (k = 0, 1, 2, 3, 5, 9), read off calibrate's `buyer_curve` (its replay of every minor and the sampled
adults), printed as a table and drawn as steps. One figure per run at k = 1 (where the 0.5 % target with 90 %
confidence puts the point on 902 minors) says little when a neighbouring k gives another order. The curve holds
201 thresholds, so a figure here can sit a few tenths above the one calibrate measured at its exact point.
"""
import json
import sys

KS = (0, 1, 2, 3, 5, 9)


def asked_at(curve: list[dict], n_minors: int, k: int) -> float:
    """Fewest adults asked among thresholds that pass at most k minors."""
    return min(p["adults_asked"] for p in curve if round(p["minors_ok"] * n_minors) <= k)


def main(out: str, runs: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    print(f"{'run':28s} " + " ".join(f"k={k:<4d}" for k in KS) + "  (25+ buyers asked, %, at k minor buyers ok)")
    for run in runs:
        name, path = run.split("=", 1)
        cal = json.load(open(path))
        n = cal["operating_point"]["measured"]["per_buyer"]["n_minors"]
        row = [100 * asked_at(cal["buyer_curve"], n, k) for k in range(max(KS) + 1)]
        print(f"{name:28s} " + " ".join(f"{row[k]:6.1f}" for k in KS))
        ax.step(range(len(row)), row, where="post", label=name)
    ax.set_xlabel(f"minor val buyers decided ok (of {n})")
    ax.set_ylabel("adult val buyers asked for ID (%)")
    ax.set_title("Per buyer, val: adults asked against minors passed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
