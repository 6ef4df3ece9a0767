#!/usr/bin/env bash
# v2.1: v2 recovered from its .tflite, fine-tuned twice (seeds 0 and 1), averaged (README, "Recovering a lost
# float parent, and averaging fine-tunes"). Run from the repository root with v2's file at V2 (git show
# d571226:edge/assets/default_model.tflite, and its .json) and ../shared beside the checkout.
# Measured on a 2-core Xeon: recover 19 s, each fine-tune 4 epochs of 250-390 s.
set -euo pipefail
D=../shared/datasets
V2=${V2:-default_model_v2.tflite}
agegate recover "$V2" --data $D/utkface --data $D/aaf --out runs/v2-rec
for seed in 0 1; do
  agegate train --data $D/utkface --data $D/aaf --out runs/v2-ft-$seed --backbone mobilenet_v2 --input-size 112 \
    --weights runs/v2-rec/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed $seed --cache-dir cache
done
# the candidates of the README's table (chosen on val)
agegate average runs/v2-rec runs/v2-ft-0 --out runs/soup2
agegate average runs/v2-rec runs/v2-ft-0 runs/v2-ft-1 --out runs/soup3
agegate average runs/v2-rec runs/v2-ft-0 runs/v2-ft-1 --weight 2 --weight 1 --weight 1 --out runs/v2.1
for run in v2-rec soup2 soup3 v2.1; do
  agegate convert runs/$run --quant int8 --calibration $D/utkface --calibration $D/aaf --calibration-size 1000 \
    --float-layers 2 --tta mirror --out $run-mixed.tflite
  agegate calibrate $run-mixed.tflite --data $D/utkface --data $D/aaf --split val --buyers 800 --json > calibrate-val-$run.json
  # (v2.1-mixed.tflite, calibrated, is edge/assets/default_model.tflite)
  agegate eval --model $run-mixed.tflite --data $D/utkface --data $D/aaf --split val --json > eval-val-$run-mixed.json
done
# float, with mirror TTA: an average takes its first run's metadata (the recovered model's: mirror), so the
# fine-tune alone is read as the average with weight 0 on the start
agegate average runs/v2-rec runs/v2-ft-0 --weight 0 --weight 1 --out runs/v2-ft-0-mirror
for run in v2-rec soup2 soup3 v2.1 v2-ft-0-mirror; do
  agegate eval --model runs/$run --data $D/utkface --data $D/aaf --split val --json > eval-val-${run%-mirror}-float.json
done
agegate qa --float runs/v2.1 --quantized v2.1-mixed.tflite --data $D/utkface --data $D/aaf --split test --json > qa-test-v2.1.json
