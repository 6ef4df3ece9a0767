#!/usr/bin/env bash
# A 128 px MobileNetV2 from the face-age seed with the loss term at the 25 line (rule.md). Resumable: rerun.
# Paths as run on the project's CPU machine (/work/main: this repository; /work/c36: the session's workspace,
# the seed unzipped there as the model card says).
set -u
cd /work/c36
D=/work/shared/datasets; OUT=runs/v3c25-128
if [ -f $OUT/checkpoints/state.json ]; then
  agegate train --data $D/utkface --data $D/aaf --out $OUT --resume --epochs ${EPOCHS:-14}
else
  agegate train --data $D/utkface --data $D/aaf --out $OUT --backbone mobilenet_v2 --input-size 128 \
    --weights weights/face_age_expert.keras --head distribution --crop box --augment till --age-prior balanced \
    --c25-weight 64 --epochs ${EPOCHS:-14} --freeze-epochs 1 --lr 5e-4 --batch-size 64 --patience 5 --cache-dir cache
fi
echo "$(date +%T) train.sh exit $?"
