#!/usr/bin/env bash
# v2.3 fine-tuned toward the mean of itself and the 128 px run, averaged with its start (rule.md). Resumable:
# each step is skipped when its output exists. Paths as run on the project's CPU machine (/work/main: this
# repository; /work/c37: the session's workspace, with teacher/v3c25.tflite converted and calibrated by
# ../candidate-v3-c25/after.sh and the crop cache of the earlier runs). Measured on a 2-core Xeon: recover
# ~2 min, each fine-tune 2 x 2.5 min of teacher targets + 4 epochs of ~4 min, convert ~3 min, eval ~2 min,
# calibrate ~17 min.
set -euo pipefail
cd /work/c37
D=/work/shared/datasets; M=/work/main; V23=$M/edge/assets/default_model.tflite
[ -f runs/v2.3-rec/model.keras ] || agegate recover $V23 --data $D/utkface --data $D/aaf --out runs/v2.3-rec
ft() {  # seed
  [ -f runs/dft-s$1/model.keras ] && return 0
  agegate train --data $D/utkface --data $D/aaf --out runs/dft-s$1 --backbone mobilenet_v2 --input-size 112 \
    --weights runs/v2.3-rec/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed $1 --cache-dir cache \
    --c25-weight 64 --teacher $V23 --teacher teacher/v3c25.tflite --distill-weight 0.5
}
ft 0
ft 1
[ -f runs/soup-dft/model.keras ] || agegate average runs/v2.3-rec runs/dft-s0 runs/dft-s1 \
  --weight 2 --weight 1 --weight 1 --out runs/soup-dft
[ -f soup-dft-mixed.tflite ] || agegate convert runs/soup-dft --quant int8 --calibration $D/utkface \
  --calibration $D/aaf --calibration-size 1000 --float-layers 2 --tta mirror --out soup-dft-mixed.tflite
[ -s eval-val-soup-dft-mixed.json ] || agegate eval --model soup-dft-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --json > eval-val-soup-dft-mixed.json
[ -s calibrate-val-soup-dft.json ] || agegate calibrate soup-dft-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --buyers 800 --exclude $M/convert/label-errors-val.txt --json > calibrate-val-soup-dft.json
echo "$(date +%T) v2.3-distil train.sh done"
