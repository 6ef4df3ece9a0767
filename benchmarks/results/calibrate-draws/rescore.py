"""The far-camera replays of v2.5 (`../far-camera/v2.5-point0.099-A..B.json`, run at the point of 2026-12-06) read
at today's point: a buyer is asked for ID when the risk they were served with is above the point, and nothing else
the box does depends on the point, so each replay's rows (`buyer_risks`: true age, risk; 2.0 where no threshold
passes them) give its Challenge-25 figures at any point exactly, unless a risk lies within the rows' rounding of
it (checked).

    python benchmarks/results/calibrate-draws/rescore.py > benchmarks/results/calibrate-draws/far-camera-at-0.072787.txt

Other replays made at 0.0987, named on the command line (paths under benchmarks/results/), the same way:

    python benchmarks/results/calibrate-draws/rescore.py queue/second-look/test-1200-queue.json \
        > benchmarks/results/calibrate-draws/queue-test-at-0.072787.txt
"""
import json
import sys
from pathlib import Path

import numpy as np

from agegate.edge.challenge25 import rates
from agegate.edge.metadata import read_metadata

HERE = Path(__file__).parent
point = read_metadata(Path("edge/assets/default_model.tflite")).operating_point.max_risk
print(f"operating point {point} (edge/assets/default_model.json)")
FAR_CAMERA = {size: f"far-camera/v2.5-point0.099-{size}.json" for size in ("110..190", "85..110", "60..85")}
replays = {a: a for a in sys.argv[1:]} or {f"{size} px": path for size, path in FAR_CAMERA.items()}
for size, rel in replays.items():
    path = HERE.parent / rel
    rows = np.array(json.loads(path.read_text())["buyer_risks"], np.float64)
    near = np.sum(np.abs(rows[:, 1] - point) < 1e-5)  # the rows have 5 decimals
    assert near == 0, f"{path.name}: {near} risk(s) within the rows' rounding of the point; replay it again"
    for label, at in (("0.0987", 0.0987), (f"{point}", point)):
        r = rates(rows[:, 1], rows[:, 0], at, upper=False)
        print(f"{size} at {label}: minors ok {round(r['minors_ok'] * r['n_minors'])} of {r['n_minors']}, "
              f"25+ asked {r['adults_asked']:.1%} ({round(r['adults_asked'] * r['n_adults'])} of {r['n_adults']})")
