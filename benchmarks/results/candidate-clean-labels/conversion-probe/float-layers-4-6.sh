#!/usr/bin/env bash
# rule-v2.5-conversion.md: float layers 4, 5, 6; each given the calibrated file's head and point; qa on val.
set -e
cd /work/c39; D=/work/shared/datasets
for n in 4 5 6; do
  [ -f conv/fl$n.tflite ] || agegate convert runs/soup4-clean --quant int8 --calibration $D/utkface --calibration $D/aaf \
    --calibration-size 1000 --float-layers $n --tta mirror --out conv/fl$n.tflite > conv/fl$n.log 2>&1
done
for n in 4 5 6; do
python - "fl$n" <<'P'
import json, sys
n=sys.argv[1]; src=json.load(open('soup4-clean-mixed.json')); p=f'conv/{n}.json'; d=json.load(open(p))
d['head']=src['head']; d['operating_point']=src['operating_point']; json.dump(d, open(p,'w'), indent=2)
P
  agegate qa --float runs/soup4-clean --quantized conv/fl$n.tflite --data $D/utkface --data $D/aaf --split val \
    --out conv/qa-fl$n --json > conv/qa-val-fl$n.json 2> conv/qa-fl$n.err || true
  echo "$(date +%T) fl$n flips $(python -c "import json;print(json.load(open('conv/qa-val-fl$n.json'))['comparison']['decision_flip_rate'])")"
done
echo "$(date +%T) more.sh done"
