"""Draw the Challenge-25 trade-off that `agegate calibrate --png` draws, from a calibrate `--json` file kept
in this folder (the curves and the operating point are in it), without replaying the split again:

    python benchmarks/results/curve_from_calibrate.py CALIBRATE.json OUT.png
"""
import json
import sys
from pathlib import Path

from agegate.convert.calibrate import plot_tradeoff
from agegate.edge.challenge25 import OperatingPoint

result = json.loads(Path(sys.argv[1]).read_text())
plot_tradeoff(Path(sys.argv[2]), result["image_curve"], result["buyer_curve"],
              OperatingPoint.from_dict(result["operating_point"]))
