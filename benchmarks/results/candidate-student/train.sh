#!/usr/bin/env bash
# A student from the seed distilled from v2.3 and the 128 px run (rule.md). Resumable: rerun.
# Paths as run on the project's CPU machine (/work/main: this repository; /work/c36: the session's workspace
# with the seed unzipped as the model card says and the 128 px teacher converted and calibrated by ../candidate-v3-c25).
set -u
cd /work/c36
D=/work/shared/datasets; OUT=runs/student-112
if [ -f $OUT/checkpoints/state.json ]; then
  agegate train --data $D/utkface --data $D/aaf --out $OUT --resume --epochs ${EPOCHS:-14}
else
  agegate train --data $D/utkface --data $D/aaf --out $OUT --backbone mobilenet_v2 --input-size 112 \
    --weights weights/face_age_expert.keras --head distribution --crop box --augment till --age-prior balanced \
    --c25-weight 64 --teacher /work/main/edge/assets/default_model.tflite --teacher teacher/v3c25.tflite \
    --distill-weight 0.5 --epochs ${EPOCHS:-14} --freeze-epochs 1 --lr 5e-4 --batch-size 64 --patience 5 \
    --cache-dir cache
fi
echo "$(date +%T) student train.sh exit $?"
