"""Per-band bias of every shipped model and of v3, from their committed test evals (no model is run).

python benchmarks/results/band-bias/summary.py > benchmarks/results/band-bias/summary.txt
"""
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
EVALS = {"v2": "default-v2-test.json", "v2.1": "default-v2.1-test.json", "v2.2": "default-v2.2-test.json",
         "v2.3": "default-v2.3-test.json", "v2.5 (ships)": "default-v2.5-test.json",
         "v3 candidate, mirror": "candidate-v3/eval-test-v3-mirror.json"}
ADULT = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")

print("| model | set | MAE | bias 18-24 | bias 65+ | 18-24 minus 65+ | adult bands with abs(bias) > 1.5 |")
print("|---|---|---|---|---|---|---|")
for model, name in EVALS.items():
    for s in json.loads((RESULTS / name).read_text())["sets"]:
        b = s["bands"]
        off = sum(abs(b[k]["bias"]) > 1.5 for k in ADULT)
        print(f"| {model} | {s['name']} | {s['mae']:.2f} | {b['18-24']['bias']:+.2f} | {b['65+']['bias']:+.2f} | "
              f"{b['18-24']['bias'] - b['65+']['bias']:.2f} | {off} of 6 |")
