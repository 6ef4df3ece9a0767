#!/usr/bin/env bash
# Was the second look's higher val MAE the 10 labels, or this session's run-to-run spread? v2.5's seed-0 fine-tune
# (../candidate-clean-labels/train.sh's clean-s0: the first list only) trained again, unchanged, on this machine:
# its epochs against clean-s0's (then) and r2-s0's (this session, without 10 more). Run 2026-12-06 and stopped after
# two epochs: both matched clean-s0's to every printed digit (control-again-s0-history.csv).
set -euo pipefail
cd /work/c39
D=/work/shared/datasets; M=/work/main
[ -f runs/again-s0/model.keras ] || agegate train --data $D/utkface --data $D/aaf --out runs/again-s0 \
  --backbone mobilenet_v2 --input-size 112 --weights runs/v2.3-rec/model.keras --head distribution --crop box \
  --augment till --age-prior balanced --epochs 4 --freeze-epochs 0 --lr 5e-5 --batch-size 64 --patience 4 --seed 0 \
  --cache-dir cache --c25-weight 64 --exclude $M/train/label-errors-train.txt
echo "$(date +%T) control.sh done"
