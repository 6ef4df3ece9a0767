#!/usr/bin/env bash
# Control for the v5 distillation run: the same fine-tune of the v3 run (same lr, seed, data, epochs),
# without teachers. Separates the learning-rate restart from the teachers' targets. Stopped after epoch 3.
set -u
cd /work/main
D=/work/shared/datasets; OUT=/work/v5c/runs/control-128
if [ -f $OUT/checkpoints/state.json ]; then
  agegate train --data $D/utkface --data $D/aaf --out $OUT --resume --epochs 5
else
  agegate train --data $D/utkface --data $D/aaf --out $OUT --backbone mobilenet_v2 --input-size 128 \
    --weights /work/v3/runs/dist-128/model.keras --head distribution --crop box --augment till \
    --age-prior balanced --freeze-epochs 0 --lr 1.5e-4 --batch-size 64 --patience 3 --epochs 5 \
    --cache-dir /work/v3/cache
fi
echo "$(date +%T) control train.sh done: exit $?"
