"""25+ asked per buyer at several shares of val minors decided ok, read off `agegate calibrate`'s per-buyer curve
(`buyer_curve`: one row per P(under 25) threshold on its grid), for the box and both ways of framing faces near the
128 px line alike. The operating point sits at the first column (1 of 902 minors, the one pass the 0.5 % target
allows at 90 % confidence), where one or two minors decide; the other columns show the curve where more do.

    python benchmarks/results/camera-refine-margin/curve_levels.py > benchmarks/results/camera-refine-margin/curve-levels.md

Other calibrations, named on the command line as `"name=path"` (paths under benchmarks/results/):

    python benchmarks/results/camera-refine-margin/curve_levels.py "the box=calibrate-draws/calibrate-val-draws3.json" \
        "refine_margin 1.25=camera-refine-margin-draws/calibrate-val-draws3.json"
"""
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1]
FILES = {"the box (line at 128 px)": "covers/calibrate-default-v2.5-eyes-val.json",
         "line at 192 px": "camera-refine-192/calibrate-val.json",
         "refine_margin 1.25": "camera-refine-margin/calibrate-val.json"}
SHARES = (1 / 902, 0.0025, 0.005, 0.01, 0.02, 0.05)


def asked_at(curve: list[dict], share: float) -> float:
    """25+ asked at the loosest threshold of the grid whose minors ok is at most `share`."""
    return max((row for row in curve if row["minors_ok"] <= share + 1e-9), key=lambda row: row["max_risk"])["adults_asked"]


if sys.argv[1:]:
    FILES = dict(arg.split("=", 1) for arg in sys.argv[1:])

print("| val, 25+ asked per buyer when at most this share of minor buyers is decided ok | "
      + " | ".join(f"{100 * s:.2g} %" for s in SHARES) + " |")
print("|---|" + "---|" * len(SHARES))
for name, path in FILES.items():
    curve = json.loads((RESULTS / path).read_text())["buyer_curve"]
    print(f"| {name} (`{path}`) | " + " | ".join(f"{100 * asked_at(curve, s):.1f} %" for s in SHARES) + " |")
