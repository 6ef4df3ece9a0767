"""Draw the placebo's exclusion list: 20 training images chosen at random (seeded), none on the list of wrong
labels, written in the exclusion format. Run from the repository root:
    python benchmarks/results/candidate-placebo/placebo_list.py ../shared/datasets > placebo-20.txt
    python benchmarks/results/candidate-placebo/placebo_list.py ../shared/datasets 20261207 > placebo-20-b.txt
"""
import csv
import sys
from pathlib import Path

import numpy as np

root = Path(sys.argv[1])
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20261206
listed = {line.split()[0] for line in Path("train/label-errors-train.txt").read_text().splitlines()
          if line.strip() and not line.startswith("#")}
with (root / "utkface/split.csv").open() as f:
    train = [f"utkface/images/{r['file_name']}" for r in csv.DictReader(f) if r["split"] == "train"]
with (root / "aaf/labels.csv").open() as f:
    train += [f"aaf/{r['path']}" for r in csv.DictReader(f) if r["split"] == "train"]
pool = sorted(p for p in train if p not in listed)
picked = sorted(np.random.default_rng(seed).choice(pool, 20, replace=False))
print(f"# The placebo: 20 training images drawn at random (placebo_list.py, seed {seed}) from the training\n"
      "# split (UTKFace split.csv, AAF labels.csv) less train/label-errors-train.txt. Their labels were not looked\n"
      "# at: this list is a control for the list of wrong labels, not a list of wrong labels.")
for p in picked:
    print(f"{p}  drawn at random (placebo)")
