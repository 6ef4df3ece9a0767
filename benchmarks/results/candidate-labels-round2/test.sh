#!/usr/bin/env bash
# Run only once rule.md's val conditions passed: the candidate on test, as v2.5 was (the model card's commands).
# Resumable; paths as train.sh's.
set -euo pipefail
cd /work/c39
D=/work/shared/datasets; M=/work/main; F=soup4-r2-mixed.tflite
[ -s test-soup4-r2-eval.json ] || agegate eval --model $F --data $D/utkface --data $D/aaf --split test --json \
  > test-soup4-r2-eval.json
[ -s test-soup4-r2-qa.json ] || agegate qa --float runs/soup4-r2 --quantized $F --data $D/utkface --data $D/aaf \
  --split test --json > test-soup4-r2-qa.json || true  # qa exits 1 on a refusal; the JSON says why
[ -s test-soup4-r2-replay.json ] || agegate replay $D/utkface $D/aaf --model $F --split test --limit 1200 \
  --gap 0..15 --json > test-soup4-r2-replay.json
[ -s test-soup4-r2-replay-minors.json ] || agegate replay $D/utkface $D/aaf --model $F --split test --ages 0..17 \
  --gap 0..15 --json > test-soup4-r2-replay-minors.json
echo "$(date +%T) labels-round2 test.sh done"
