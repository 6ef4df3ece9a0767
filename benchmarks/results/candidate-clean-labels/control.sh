#!/usr/bin/env bash
# The control: v2.3's recipe once more, the wrong labels kept (everything else as train.sh). Resumable: each step is skipped when its
# output exists. Paths as run on the project's CPU machine (/work/main: this repository; /work/c39: the
# session's workspace).
set -euo pipefail
cd /work/c39
D=/work/shared/datasets; M=/work/main; V23=$M/edge/assets/default_model.tflite
[ -f runs/v2.3-rec/model.keras ] || agegate recover $V23 --data $D/utkface --data $D/aaf --out runs/v2.3-rec
ft() {  # seed
  [ -f runs/ctrl-s$1/model.keras ] && return 0
  agegate train --data $D/utkface --data $D/aaf --out runs/ctrl-s$1 --backbone mobilenet_v2 --input-size 112 \
    --weights runs/v2.3-rec/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed $1 --cache-dir cache \
    --c25-weight 64
}
ft 0
ft 1
[ -f runs/soup-ctrl/model.keras ] || agegate average runs/v2.3-rec runs/ctrl-s0 runs/ctrl-s1 \
  --weight 2 --weight 1 --weight 1 --out runs/soup-ctrl
[ -f soup-ctrl-mixed.tflite ] || agegate convert runs/soup-ctrl --quant int8 --calibration $D/utkface \
  --calibration $D/aaf --calibration-size 1000 --float-layers 2 --tta mirror --out soup-ctrl-mixed.tflite
[ -s eval-val-soup-ctrl-mixed.json ] || agegate eval --model soup-ctrl-mixed.tflite --data $D/utkface \
  --data $D/aaf --split val --json > eval-val-soup-ctrl-mixed.json
[ -s calibrate-val-soup-ctrl.json ] || agegate calibrate soup-ctrl-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --buyers 800 --exclude $M/convert/label-errors-val.txt --json > calibrate-val-soup-ctrl.json
echo "$(date +%T) clean-labels control done"
