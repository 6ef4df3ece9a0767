#!/usr/bin/env bash
# The 128 px candidate (2026-12-03, rule-128px.md written before it trained): v2.3's float soup fine-tuned at
# 128 px with v2.3's recipe, then three readings of the runs, each converted to mixed int8 with mirror TTA and
# judged on val. Run from the repository root with D=../shared/datasets and v2.3's soup at runs/soup3w-w64
# (candidate-c25-loss/train.sh). None replaced v2.3 (README, "A 128 px fine-tune of v2.3").
set -euo pipefail
D=${D:-../shared/datasets}
for seed in 0 1; do
  agegate train --data $D/utkface --data $D/aaf --out runs/ft128-w64-s$seed --backbone mobilenet_v2 --input-size 128 \
    --weights runs/soup3w-w64/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --cache-dir cache --seed $seed --c25-weight 64
done
# A: the fine-tunes and the start, all at 128 px (the start keeps half)
agegate average runs/ft128-w64-s0 runs/ft128-w64-s1 runs/soup3w-w64 --weight 1 --weight 1 --weight 2 \
  --across-sizes --out runs/soup128-w64
# B: the same mean, run at the start's 112 px
agegate average runs/soup3w-w64 runs/ft128-w64-s0 runs/ft128-w64-s1 --weight 2 --weight 1 --weight 1 \
  --across-sizes --out runs/soupB-w64-112
# control: the start's weights at 128 px, no fine-tune (weight 0 on the fine-tune, which sets the size)
agegate average runs/ft128-w64-s0 runs/soup3w-w64 --weight 0 --weight 1 --across-sizes --out runs/start-at-128
for n in soup128-w64 soupB-w64-112 start-at-128; do
  agegate convert runs/$n --quant int8 --calibration $D/utkface --calibration $D/aaf --calibration-size 1000 \
    --float-layers 2 --tta mirror --out $n-mixed.tflite
  agegate eval --model $n-mixed.tflite --data $D/utkface --data $D/aaf --split val --json > eval-val-$n-mixed.json
done
# only A was calibrated (B and the control failed rule 1 on val MAE alone)
agegate calibrate soup128-w64-mixed.tflite --data $D/utkface --data $D/aaf --split val --buyers 800 \
  --exclude convert/label-errors-val.txt --json > calibrate-val-allminors-soup128-w64.json
