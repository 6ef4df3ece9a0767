"""The shipped v2.5 at its point on test, per buyer, over three draws: the replays of 2026-12-07 at seed 0
(`../recalibrate-2026-12-07/replay-test.json`, `replay-test-minors.json`, made at 0.0728, which decides as 0.072787
on them: no risk lies between) and at seeds 1 and 2 here (made at 0.072787). A 1,200-buyer replay's seed also draws which test buyers
it samples, so those three are three samples; every test minor (`--ages 0..17`) is the same 930 buyers each time,
so their draws stack (challenge25.rates over (draws, people)).

    python benchmarks/results/test-draws-2026-12-07/summary.py > benchmarks/results/test-draws-2026-12-07/summary.md
"""
import json
from pathlib import Path

import numpy as np

from agegate.convert.calibrate import buyer_matrix
from agegate.edge.challenge25 import rates
from agegate.edge.metadata import read_metadata

HERE = Path(__file__).parent
POINT = read_metadata(Path("edge/assets/default_model.tflite")).operating_point.max_risk
SAMPLES = [HERE.parent / "recalibrate-2026-12-07" / "replay-test.json"] + [HERE / f"replay-test-seed{s}.json" for s in (1, 2)]
MINORS = [HERE.parent / "recalibrate-2026-12-07" / "replay-test-minors.json"] + [
    HERE / f"replay-test-minors-seed{s}.json" for s in (1, 2)]


def at_point(path: Path) -> dict:
    rows = np.array(json.loads(path.read_text())["buyer_risks"], np.float64)
    near = np.abs(rows[:, 1] - POINT) < 1e-5  # the oldest rows have 5 decimals
    assert not np.any(near), f"{path.name}: a risk within the rows' rounding of the point; replay it again"
    return rates(rows[:, 1], rows[:, 0], POINT, upper=False) | {"rows": rows}


print(f"operating point {POINT} (edge/assets/default_model.json)\n")
print("| 1,200 test buyers alone, gaps 0-15 | decided | split + merged | MAE | bias 18-24 / 65+ | minors ok | 25+ asked |")
print("|---|---|---|---|---|---|---|")
asked = n_adults = 0
for path in SAMPLES:
    s, r = json.loads(path.read_text()), at_point(path)
    k, a = round(r["minors_ok"] * r["n_minors"]), round(r["adults_asked"] * r["n_adults"])
    asked, n_adults = asked + a, n_adults + r["n_adults"]
    print(f"| seed {s['seed']} (`{path.relative_to(HERE.parent)}`) | {s['decided_share']:.2%} | {s['split_buyers']} + "
          f"{s['merged']} | {s['mae']:.2f} | {s['bands']['18-24']['bias']:+.2f} / {s['bands']['65+']['bias']:+.2f} | "
          f"{k} of {r['n_minors']} | {a} of {r['n_adults']} ({r['adults_asked']:.1%}) |")
print(f"| the three samples together | | | | | | {asked} of {n_adults} ({asked / n_adults:.1%}) |\n")

for path in MINORS:
    at_point(path)  # checks no risk lies within the rows' rounding of the point
ages, risks = buyer_matrix([json.loads(p.read_text()) for p in MINORS])  # refuses draws of other buyers
print("| every test minor as a buyer (930), gaps 0-15 | minors ok |")
print("|---|---|")
for path in MINORS:
    s = json.loads(path.read_text())
    print(f"| seed {s['seed']} (`{path.relative_to(HERE.parent)}`) | {s['minors_decided_ok']} of {s['minors']} "
          f"({s['minors_decided_ok'] / s['minors']:.2%}) |")
over = rates(risks, ages, POINT)
print(f"| over the three draws (a minor passing one draw of three counts a third) | "
      f"{over['minors_ok'] * over['n_minors']:.2f} of {over['n_minors']} ({over['minors_ok']:.2%}; 90 % upper bound "
      f"{over['minors_ok_upper']:.2%}) |")
