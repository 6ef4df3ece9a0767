#!/usr/bin/env bash
# After train.sh: convert the run as v2.3 was, fit its temperature (the teacher's), start the student
# (../candidate-student/train.sh), then the val figures rule.md asks for. Paths as in train.sh.
set -eu
cd /work/c36
D=/work/shared/datasets; R=/work/main/benchmarks/results/candidate-v3-c25
agegate convert runs/v3c25-128 --quant int8 --calibration $D/utkface --calibration $D/aaf --calibration-size 1000 \
  --float-layers 2 --tta mirror --out v3c25-mixed.tflite
mkdir -p teacher && cp v3c25-mixed.tflite teacher/v3c25.tflite && cp v3c25-mixed.json teacher/v3c25.json
agegate calibrate teacher/v3c25.tflite --data $D/utkface --data $D/aaf --split val --buyers 0 --json > teacher-calibrate.json
nohup /work/main/benchmarks/results/candidate-student/train.sh > student.log 2>&1 &
agegate eval --model v3c25-mixed.tflite --data $D/utkface --data $D/aaf --split val --json > eval-val-v3c25-mixed.json
python -m agegate.benchmarks.ensemble_probe /work/main/edge/assets/default_model.tflite teacher/v3c25.tflite \
  --data $D/utkface --data $D/aaf --split val --out ensemble-probe-v2.3-v3c25-val.json
cd /work/main && agegate calibrate /work/c36/v3c25-mixed.tflite --data $D/utkface --data $D/aaf --split val \
  --buyers 800 --exclude convert/label-errors-val.txt --json --png /work/c36/v3c25-challenge25-val.png > /work/c36/calibrate-val-v3c25.json
echo "$(date +%T) after.sh done"
