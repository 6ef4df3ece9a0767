"""UTKFace test chips that are byte-identical to training chips, and the MAE without them.

    agegate eval --model edge/assets/default_model.tflite --data $D/utkface --split test \
        --predictions utk-test-pred.csv --json > /dev/null
    python benchmarks/results/utk-test-copies/copies.py $D/utkface utk-test-pred.csv > copies.txt
"""
import csv
import hashlib
import sys
from collections import defaultdict
from pathlib import Path

root, predictions = Path(sys.argv[1]), sys.argv[2]
split = {r["file_name"]: r["split"] for r in csv.DictReader(open(root / "split.csv"))}
copies = defaultdict(list)
for name in split:
    copies[hashlib.sha1((root / "images" / name).read_bytes()).hexdigest()].append(name)
seen = {}  # test chip -> the ages of its copies in train
for group in copies.values():
    for name in group:
        train = [int(o.split("_")[0]) for o in group if o != name and split[o] == "train"]
        if split[name] == "test" and train:
            seen[name] = train
rows = [r for r in csv.DictReader(open(predictions)) if not r["skipped"]]
err = {Path(r["file"]).name: abs(float(r["error"])) for r in rows}
rest = [e for n, e in err.items() if n not in seen]
print(f"test chips: {len(err)}; byte-identical to a training chip: {len(seen)} "
      f"({sum(int(n.split('_')[0]) not in a for n, a in seen.items())} labelled with another age)")
print(f"MAE all {sum(err.values()) / len(err):.3f}; without the copies {sum(rest) / len(rest):.3f} ({len(rest)}); "
      f"the copies alone {sum(err[n] for n in seen) / len(seen):.3f}")
