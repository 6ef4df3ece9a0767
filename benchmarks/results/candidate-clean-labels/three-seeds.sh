#!/usr/bin/env bash
# The next candidate (rule-three-seeds.md): a third fine-tune without the wrong labels, and the 3:1:1:1 mean with
# the start and train.sh's two. Resumable; paths as train.sh's.
set -euo pipefail
cd /work/c39
D=/work/shared/datasets; M=/work/main
[ -f runs/clean-s2/model.keras ] || agegate train --data $D/utkface --data $D/aaf --out runs/clean-s2 \
  --backbone mobilenet_v2 --input-size 112 --weights runs/v2.3-rec/model.keras --head distribution --crop box \
  --augment till --age-prior balanced --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed 2 \
  --cache-dir cache --c25-weight 64 --exclude $M/train/label-errors-train.txt
[ -f runs/soup4-clean/model.keras ] || agegate average runs/v2.3-rec runs/clean-s0 runs/clean-s1 runs/clean-s2 \
  --weight 3 --weight 1 --weight 1 --weight 1 --out runs/soup4-clean
[ -f soup4-clean-mixed.tflite ] || agegate convert runs/soup4-clean --quant int8 --calibration $D/utkface \
  --calibration $D/aaf --calibration-size 1000 --float-layers 2 --tta mirror --out soup4-clean-mixed.tflite
[ -s eval-val-soup4-clean-mixed.json ] || agegate eval --model soup4-clean-mixed.tflite --data $D/utkface \
  --data $D/aaf --split val --json > eval-val-soup4-clean-mixed.json
[ -s calibrate-val-soup4-clean.json ] || agegate calibrate soup4-clean-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --buyers 800 --exclude $M/convert/label-errors-val.txt --json > calibrate-val-soup4-clean.json
echo "$(date +%T) three-seeds.sh done"
