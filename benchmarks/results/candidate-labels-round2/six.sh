#!/usr/bin/env bash
# rule-six-fine-tunes.md: v2.5's three fine-tunes and train.sh's three, averaged with the start 6:1:1:1:1:1:1.
# Resumable; paths as train.sh's (runs/clean-s* from ../candidate-clean-labels/train.sh and three-seeds.sh).
set -euo pipefail
cd /work/c39
D=/work/shared/datasets; M=/work/main; F=soup7-mixed.tflite
[ -f runs/soup7/model.keras ] || agegate average runs/v2.3-rec runs/clean-s0 runs/clean-s1 runs/clean-s2 \
  runs/r2-s0 runs/r2-s1 runs/r2-s2 --weight 6 --weight 1 --weight 1 --weight 1 --weight 1 --weight 1 --weight 1 \
  --out runs/soup7
[ -f $F ] || agegate convert runs/soup7 --quant int8 --calibration $D/utkface --calibration $D/aaf \
  --calibration-size 1000 --float-layers 2 --tta mirror --out $F
[ -s eval-val-soup7-mixed.json ] || agegate eval --model $F --data $D/utkface --data $D/aaf --split val --json \
  > eval-val-soup7-mixed.json
[ -s calibrate-val-soup7.json ] || agegate calibrate $F --data $D/utkface --data $D/aaf --split val --buyers 800 \
  --exclude $M/convert/label-errors-val.txt --json > calibrate-val-soup7.json
[ -s val-soup7-qa.json ] || agegate qa --float runs/soup7 --quantized $F --data $D/utkface --data $D/aaf \
  --split val --json > val-soup7-qa.json || true  # qa exits 1 on a refusal
echo "$(date +%T) six.sh done"
