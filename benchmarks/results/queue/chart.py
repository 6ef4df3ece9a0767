"""The four val replays of this folder side by side: buyers alone or with the next one waiting behind, the box
before and after it learnt the queue. `python benchmarks/results/queue/chart.py` writes queue-val.png."""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
RUNS = [("alone, box before", "val-600-before.json"), ("alone, box now", "val-600.json"),
        ("queue, box before", "val-600-queue-before.json"), ("queue, box now", "val-600-queue.json")]
FIGURES = [("split (two decisions)", lambda r: r["split_buyers"] / r["buyers"]),
           ("not decided", lambda r: 1 - r["decided_share"]),
           ("25+ asked for ID", lambda r: r["adults_asked_share"])]

runs = [(name, json.loads((HERE / f).read_text())) for name, f in RUNS]
fig, axes = plt.subplots(1, len(FIGURES), figsize=(12, 3.6))
for ax, (title, value) in zip(axes, FIGURES):
    ax.bar([n for n, _ in runs], [100 * value(r) for _, r in runs], color=["#95a5a6", "#3b6ea8", "#e67e22", "#27ae60"])
    ax.set_title(title)
    ax.set_ylabel("% of 600 val buyers" if "asked" not in title else "% of 445 val buyers aged 25+")
    ax.tick_params(axis="x", rotation=30)
fig.suptitle("agegate replay --queue: the next buyer waiting in view behind the one at the till (val, 600 buyers)")
fig.tight_layout()
fig.savefig(HERE / "queue-val.png", dpi=90)
