#!/usr/bin/env bash
# v3 candidate (issues 15/17): MobileNetV2 128 px from the apmoe seed, distribution head, box crops, till
# augmentation, UTKFace + AAF, balanced age prior. Resumable: rerun this script in a later session.
set -u
cd /work/main
D=/work/shared/datasets
OUT=/work/v3/runs/dist-128
if [ -f $OUT/checkpoints/state.json ]; then
  agegate train --data $D/utkface --data $D/aaf --out $OUT --resume --epochs ${EPOCHS:-20}
else
  agegate train --data $D/utkface --data $D/aaf --out $OUT --backbone mobilenet_v2 --input-size 128 \
    --weights /work/weights/face_age_expert.keras --head distribution --crop box --augment till --age-prior balanced \
    --epochs ${EPOCHS:-20} --freeze-epochs 1 --lr 5e-4 --batch-size 64 --patience 5 --cache-dir /work/v3/cache
fi
echo "$(date +%T) train.sh exit $?"
