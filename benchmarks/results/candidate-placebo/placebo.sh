#!/usr/bin/env bash
# The placebo (rule.md beside this file): the clean-labels run's recipe (../candidate-clean-labels/train.sh) with
# 20 training images drawn at random left out instead of the 20 wrong labels. Resumable: each step is skipped when
# its output exists. Paths as run on the project's CPU machine (/work/main: this repository; /work/c39: the
# session's workspace, holding runs/v2.3-rec, the start of both earlier runs). The val list is calibrate's as the
# earlier runs had it (its first entry: git show 8fe2b96:convert/label-errors-val.txt).
# Usage: placebo.sh [TAG LIST]: the first placebo is `placebo.sh` (plac, placebo-20.txt), the second
# `placebo.sh plac2 placebo-20-b.txt`.
set -euo pipefail
T=${1:-plac}; L=${2:-placebo-20.txt}
cd /work/c39
D=/work/shared/datasets; M=/work/main; P=$M/benchmarks/results/candidate-placebo
[ -f label-errors-val-1.txt ] || git -C $M show 8fe2b96:convert/label-errors-val.txt > label-errors-val-1.txt
ft() {  # seed
  [ -f runs/$T-s$1/model.keras ] && return 0
  agegate train --data $D/utkface --data $D/aaf --out runs/$T-s$1 --backbone mobilenet_v2 --input-size 112 \
    --weights runs/v2.3-rec/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed $1 --cache-dir cache \
    --c25-weight 64 --exclude $P/$L
}
ft 0
ft 1
[ -f runs/soup-$T/model.keras ] || agegate average runs/v2.3-rec runs/$T-s0 runs/$T-s1 \
  --weight 2 --weight 1 --weight 1 --out runs/soup-$T
[ -f soup-$T-mixed.tflite ] || agegate convert runs/soup-$T --quant int8 --calibration $D/utkface \
  --calibration $D/aaf --calibration-size 1000 --float-layers 2 --tta mirror --out soup-$T-mixed.tflite
[ -s eval-val-soup-$T-mixed.json ] || agegate eval --model soup-$T-mixed.tflite --data $D/utkface \
  --data $D/aaf --split val --json > eval-val-soup-$T-mixed.json
[ -s calibrate-val-soup-$T.json ] || agegate calibrate soup-$T-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --buyers 800 --exclude label-errors-val-1.txt --json > calibrate-val-soup-$T.json
echo "$(date +%T) placebo.sh $T done"
