#!/usr/bin/env bash
# How far int8 moves each face from its float parent, full int8 against mixed int8 (convert/mixed_int8.py):
# the same calibration images, 0 / 1 / 2 / 4 layers kept float, beside float32 (is the conversion itself exact?)
# and dynamic (int8 weights, float activations: which of the two hurts); `agegate qa` on val of both sets
# measures the per-image gap and the decision flips, `agegate bench` the latency (interleaved, one run).
# Usage: bash benchmarks/mixed_int8.sh RUN_DIR NAME   (RUN_DIR: a Keras training run; about 30 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?Keras training run folder}
NAME=${2:?name for the result files}
D=../shared/datasets
W=${WORK:-/tmp/agegate-mixed}/$NAME
R=benchmarks/results/mixed-int8
mkdir -p "$W" "$R"
models=()
for n in 0 1 2 4; do
  m="$W/float-layers-$n.tflite"
  [ -f "$m" ] || agegate convert "$RUN" --quant int8 --calibration "$D/utkface" --calibration "$D/aaf" \
    --calibration-size 500 --float-layers "$n" --out "$m"
  models+=("$m")
  [ -f "$R/$NAME-qa-float-layers-$n.json" ] || agegate qa --float "$RUN" --quantized "$m" --data "$D/utkface" \
    --data "$D/aaf" --split val --limit 500 --max-mae 99 --out "$W/qa-$n" --json \
    > "$R/$NAME-qa-float-layers-$n.json" || true  # a failed gate exits 1; the figures are what is kept
done
for q in float32 dynamic; do
  m="$W/$q.tflite"
  [ -f "$m" ] || agegate convert "$RUN" --quant "$q" --out "$m"
  [ -f "$R/$NAME-qa-$q.json" ] || agegate qa --float "$RUN" --quantized "$m" --data "$D/utkface" \
    --data "$D/aaf" --split val --limit 500 --max-mae 99 --out "$W/qa-$q" --json > "$R/$NAME-qa-$q.json" || true
done
# latency wants a quiet machine: nothing else running (the committed figures: starts-and-mixed-int8-latency.json)
[ -f "$R/$NAME-latency.json" ] || agegate bench "${models[@]}" --threads 1,2 --runs 300 --out "$R/$NAME-latency.json"
python - "$R" "$NAME" <<'PY'
import json, sys
r, name = sys.argv[1:]
print("file | mean |tflite - float| (years) | p95 | flips | tflite MAE | float MAE")
for n in ("float32", "dynamic", "float-layers-0", "float-layers-1", "float-layers-2", "float-layers-4"):
    d = json.load(open(f"{r}/{name}-qa-{n}.json"))
    c = d["comparison"]
    print(f"{n} | {c['mean_abs_diff']:.2f} | {c['p95_abs_diff']:.2f} | {c['decision_flip_rate']:.2%} | "
          f"{d['quantized_metrics']['mae']:.2f} | {d['float_metrics']['mae']:.2f}")
PY
