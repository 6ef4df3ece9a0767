#!/usr/bin/env bash
# Run only once a rule's val conditions passed: the candidate NAME (soup4-r2: rule.md; soup7:
# rule-six-fine-tunes.md) on test, as v2.5 was (the model card's commands). Resumable; paths as train.sh's.
set -euo pipefail
cd /work/c39
N=${1:?usage: test.sh NAME (soup4-r2 or soup7)}
D=/work/shared/datasets; F=$N-mixed.tflite
[ -s test-$N-eval.json ] || agegate eval --model $F --data $D/utkface --data $D/aaf --split test --json \
  > test-$N-eval.json
[ -s test-$N-qa.json ] || agegate qa --float runs/$N --quantized $F --data $D/utkface --data $D/aaf \
  --split test --json > test-$N-qa.json || true  # qa exits 1 on a refusal; the JSON says why
[ -s test-$N-replay.json ] || agegate replay $D/utkface $D/aaf --model $F --split test --limit 1200 \
  --gap 0..15 --json > test-$N-replay.json
[ -s test-$N-replay-minors.json ] || agegate replay $D/utkface $D/aaf --model $F --split test --ages 0..17 \
  --gap 0..15 --json > test-$N-replay-minors.json
echo "$(date +%T) labels-round2 test.sh $N done"
