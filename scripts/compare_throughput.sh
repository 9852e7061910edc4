#!/usr/bin/env bash
# Alternates microvision and the PyTorch eager reference on the same model, batch and precision,
# ROUNDS times each, and prints both medians and their ratio (training images/s).
# usage: scripts/compare_throughput.sh MODEL BATCH PRECISION [ROUNDS] [STEPS]  (STEPS per timing, default 20)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. scripts/lib.sh
usage_if_asked "$self" "$@"
[ $# -le 5 ] || { echo "compare_throughput.sh: at most 5 arguments (MODEL BATCH PRECISION ROUNDS STEPS)" >&2; exit 2; }
model=${1:-simple_cnn} batch=${2:-128} precision=${3:-auto} rounds=${4:-3} steps=${5:-20}
need_count BATCH "$batch"; need_count ROUNDS "$rounds"; need_count STEPS "$steps"; need_precision PRECISION "$precision"
need_tools
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ours=() ref=()
for _ in $(seq "$rounds"); do
  ours+=("$(target/release/microvision bench throughput --model "$model" --batch "$batch" --precision "$precision" --steps "$steps" | tail -n 1)")
  ref+=("$(cd pytorch && ../.venv/bin/python throughput.py --model "$model" --batch "$batch" --precision "$precision" --steps "$steps" | tail -n 1)")
done
printf '%s\n' "${ours[@]}" > "$out/ours.jsonl"
printf '%s\n' "${ref[@]}" > "$out/ref.jsonl"
.venv/bin/python - "$model" "$batch" "$precision" "$out" <<'PY'
import json, statistics, sys
model, batch, precision, out = sys.argv[1:5]
def med(path, key):
    vals = [v for line in open(path) for v in json.loads(line)[key]]
    return statistics.median(vals), len(vals)
for key in ("train", "infer"):
    (o, n), (r, _) = med(f"{out}/ours.jsonl", key), med(f"{out}/ref.jsonl", key)
    print(f"{model} batch {batch} {precision} {key}: microvision {o:.0f} img/s, pytorch eager {r:.0f} img/s, "
          f"ratio {o / r:.2f} (medians of {n} timings each, alternating)")
PY
