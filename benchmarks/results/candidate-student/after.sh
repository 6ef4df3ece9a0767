#!/usr/bin/env bash
# After train.sh: convert the student as v2.3 was, its val figures, and its calibration as v2.3's (rule.md).
# Paths as in train.sh.
set -eu
cd /work/c36
D=/work/shared/datasets
agegate convert runs/student-112 --quant int8 --calibration $D/utkface --calibration $D/aaf --calibration-size 1000 \
  --float-layers 2 --tta mirror --out student-mixed.tflite
agegate eval --model student-mixed.tflite --data $D/utkface --data $D/aaf --split val --json > eval-val-student-mixed.json
cd /work/main && agegate calibrate /work/c36/student-mixed.tflite --data $D/utkface --data $D/aaf --split val \
  --buyers 800 --exclude convert/label-errors-val.txt --json --png /work/c36/student-challenge25-val.png \
  > /work/c36/calibrate-val-student.json
echo "$(date +%T) student after.sh done"
