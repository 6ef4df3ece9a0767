#!/usr/bin/env bash
# v2.3's own file run at more input sizes (2026-12-05): which sizes, judged on val only. Each copy is the
# shipped .tflite byte for byte with other test-time views in its sidecar (`agegate tta`); every view is
# mirrored too. Run from the repository root with D=../shared/datasets; writes eval-val-<sizes>.json here.
set -euo pipefail
D=${D:-../shared/datasets}
R=benchmarks/results/candidate-v2.4-sizes
M=edge/assets/default_model.tflite
W=$(mktemp -d)
agegate eval --model $M --data $D/utkface --data $D/aaf --split val --json > $R/eval-val-112.json
for sizes in 96 128 144 "96 128" "128 144"; do
  name=112+${sizes// /+}
  agegate tta $M --tta mirror $(printf -- "--size %s " $sizes) --out $W/$name.tflite
  agegate eval --model $W/$name.tflite --data $D/utkface --data $D/aaf --split val --json > $R/eval-val-$name.json
done
python - "$R" <<'PY'
import json, sys
from pathlib import Path
rows = []
for f in sorted(Path(sys.argv[1]).glob("eval-val-*.json")):
    d = json.loads(f.read_text())
    sets = {s["name"]: s for s in d["sets"]}
    rows.append((f.stem[9:], d["mae"], sets["utkface"]["mae"], sets["aaf"]["mae"],
                 d["challenge25"]["safe_flag_rate_25plus"]))
print("| sizes (px) | MAE | UTKFace | AAF | 25+ asked at 1 % of minors passed, per image |")
print("|---|---|---|---|---|")
for name, mae, utk, aaf, asked in sorted(rows, key=lambda r: len(r[0])):
    print(f"| {name} | {mae:.3f} | {utk:.3f} | {aaf:.3f} | {100 * asked:.1f} % |")
PY
