"""What the box pays per frame for `refine_margin` 1.25 (the rule's item 4): a face whose first box reads 128-160 px
is looked at again. `camera-refine-192/frame_cost.py`'s frames (the demo portrait scaled so the first detector pass
finds a face of about 100, 140, 150 and 175 px, in a 640x480 grey frame, beside an empty one), timed by the box
(`BoxPipeline`, the shipped model, 2 threads) with the margin off (1.0, the box now) and on (1.25), interleaved in
one process; the ratios within this run are the result.

    python benchmarks/results/camera-refine-margin-draws/frame_cost.py > benchmarks/results/camera-refine-margin-draws/frame-cost.txt
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from agegate.edge.detect import DetectorOptions

_spec = importlib.util.spec_from_file_location(
    "frame_cost_192", Path(__file__).resolve().parents[1] / "camera-refine-192" / "frame_cost.py")
_192 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_192)
timed = _192.timed  # the same frames, boxes and interleaved timing as the 192 px line's measurement

MARGINS = {"margin off (1.0)": 1.0, "margin 1.25": 1.25}
TARGETS = (100, 140, 150, 175)


def main() -> None:
    frames, found, p50 = timed({name: DetectorOptions(refine_margin=m) for name, m in MARGINS.items()}, TARGETS)
    print("| frame | first-pass face px | " + " | ".join(MARGINS) + " | margin on / off |")
    print("|---|---|" + "---|" * (len(MARGINS) + 1))
    for fname in frames:
        px = f"{found[fname][0].side:.0f}" if found[fname] else "none"
        off, on = (p50[fname, name] for name in MARGINS)
        print(f"| {fname} | {px} | {off:.2f} | {on:.2f} | {on / off:.2f}x |")


if __name__ == "__main__":
    main()
