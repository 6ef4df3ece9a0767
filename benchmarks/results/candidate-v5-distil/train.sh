#!/usr/bin/env bash
# v5 candidate: the v3 run (MobileNetV2 128 px, distribution head) fine-tuned 5 epochs on the labels mixed
# with the mean distribution of two teachers, the shipped v2 and the v3 candidate (both int8, mirror TTA),
# computed once over the training images through the box's detector. Resumable (rerun this script).
# Paths as run on the project's CPU machine (/work/main: this repository; /work/v3: the v3 candidate's run
# and converted file, benchmarks/results/candidate-v3). Stopped after epoch 3 (val MAE rose each epoch, as in
# the control run without teachers, control-train.sh).
set -u
cd /work/main
D=/work/shared/datasets; OUT=/work/v5/runs/distil-128
if [ -f $OUT/checkpoints/state.json ]; then
  agegate train --data $D/utkface --data $D/aaf --out $OUT --resume --epochs 5
else
  agegate train --data $D/utkface --data $D/aaf --out $OUT --backbone mobilenet_v2 --input-size 128 \
    --weights /work/v3/runs/dist-128/model.keras --head distribution --crop box --augment till \
    --age-prior balanced --freeze-epochs 0 --lr 1.5e-4 --batch-size 64 --patience 3 --epochs 5 \
    --teacher edge/assets/default_model.tflite --teacher /work/v3/ship/v3-mirror.tflite --distill-weight 0.5 \
    --cache-dir /work/v3/cache
fi
echo "$(date +%T) v5 train.sh done: exit $?"
