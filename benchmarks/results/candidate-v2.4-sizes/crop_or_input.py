"""Is a view at another size as good made from the model input (what `tta_sizes` does: the 112 px input
resized) as from the face crop itself (more pixels)? Run once (2026-12-05) to decide how `with_tta` makes
the view; val only, every image through the box's detector and crop, each view mirrored. MODEL is a copy
with one further size (`agegate tta edge/assets/default_model.tflite --tta mirror --size 128 --out M`).

    python benchmarks/results/candidate-v2.4-sizes/crop_or_input.py M ../shared/datasets \\
        > benchmarks/results/candidate-v2.4-sizes/crop-or-input-val.json
"""
import dataclasses
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agegate.convert.evaluate import ModelInputs, read_splits
from agegate.convert.metrics import age_metrics, challenge25
from agegate.edge.detect import box_crop
from agegate.edge.preprocess import decode_image, mirror, normalize, prepare_uint8
from agegate.edge.runtime import AgeModel

model, data = AgeModel(sys.argv[1]), Path(sys.argv[2])
(size,) = model.meta.tta_sizes
spec, at_size = model.spec, dataclasses.replace(model.spec, input_size=size)
splits = read_splits([str(data / "utkface"), str(data / "aaf")], "auto", None, "val")
records = [(s.name, r) for s in splits for r in s.records]
inputs = ModelInputs(spec, detect=True)


def crop(item):
    found = box_crop(decode_image(item[1].path), inputs.detector, spec.face_margin)
    return None if found is None else found.image


with ThreadPoolExecutor(2) as pool:
    crops = list(pool.map(crop, records))
kept = [(name, rec, c) for (name, rec), c in zip(records, crops) if c is not None]


def both(x):
    return 0.5 * (model.run_tensor(x) + model.run_tensor(mirror(x)))


raw = {"from the input (tta_sizes)": [], "from the crop": []}
for _, _, c in kept:
    x = normalize(prepare_uint8(c, spec), spec)
    raw["from the input (tta_sizes)"].append(model.raw_tensor(x))
    raw["from the crop"].append(0.5 * (both(x) + both(normalize(prepare_uint8(c, at_size), at_size))))
y = np.array([rec.age for _, rec, _ in kept], np.float64)
sets = np.array([name for name, _, _ in kept])
out = {"model": sys.argv[1], "sizes": list(model.meta.input_sizes), "split": "val", "n": len(kept), "rows": {}}
for how, rows in raw.items():
    est = model.meta.head.point(np.array(rows))
    out["rows"][how] = {"mae": age_metrics(y, est)["mae"],
                        **{f"mae_{s}": age_metrics(y[sets == s], est[sets == s])["mae"] for s in ("utkface", "aaf")},
                        "asked_25plus_at_1pct_minors": challenge25(y, est)["safe_flag_rate_25plus"]}
print(json.dumps(out, indent=2))
