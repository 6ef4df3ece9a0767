#!/usr/bin/env bash
# v2.3 fine-tuned toward the pair's mean with teachers on the augmented view (rule.md), averaged 1:1 with its
# start. Resumable: each step is skipped when its output exists. Paths as ../candidate-v2.3-distil/train.sh
# (/work/c37 holds runs/v2.3-rec from that recipe, the 128 px teacher and the crop cache).
set -euo pipefail
cd /work/c37
D=/work/shared/datasets; M=/work/main; V23=$M/edge/assets/default_model.tflite
[ -f runs/v2.3-rec/model.keras ] || agegate recover $V23 --data $D/utkface --data $D/aaf --out runs/v2.3-rec
if [ -f runs/fm-s0/checkpoints/state.json ] && [ ! -f runs/fm-s0/done ]; then
  agegate train --data $D/utkface --data $D/aaf --out runs/fm-s0 --resume --epochs 3
elif [ ! -f runs/fm-s0/done ]; then
  agegate train --data $D/utkface --data $D/aaf --out runs/fm-s0 --backbone mobilenet_v2 --input-size 112 \
    --weights runs/v2.3-rec/model.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs 3 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 3 --seed 0 --cache-dir cache \
    --c25-weight 64 --teacher $V23 --teacher teacher/v3c25.tflite --distill-weight 0.5 --teacher-view augmented
fi
touch runs/fm-s0/done
[ -f runs/soup-fm/model.keras ] || agegate average runs/v2.3-rec runs/fm-s0 --out runs/soup-fm
[ -f soup-fm-mixed.tflite ] || agegate convert runs/soup-fm --quant int8 --calibration $D/utkface \
  --calibration $D/aaf --calibration-size 1000 --float-layers 2 --tta mirror --out soup-fm-mixed.tflite
[ -s eval-val-soup-fm-mixed.json ] || agegate eval --model soup-fm-mixed.tflite --data $D/utkface --data $D/aaf \
  --split val --json > eval-val-soup-fm-mixed.json
[ -s ensemble-probe-v2.3-soupfm-val.json ] || (cd $M && python -m agegate.benchmarks.ensemble_probe $V23 \
  /work/c37/soup-fm-mixed.tflite --data $D/utkface --data $D/aaf --split val --out /work/c37/ensemble-probe-v2.3-soupfm-val.json)
echo "$(date +%T) v2.3-fm train.sh done"
