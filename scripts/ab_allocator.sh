#!/usr/bin/env bash
# A/B of memory-allocation settings on training and inference throughput, alternating runs:
#   tuned   microvision's mallopt thresholds (the default)
#   glibc   glibc's adaptive defaults (GLIBC_TUNABLES set: microvision then leaves malloc alone)
#   thp     the default plus THP_MEM_ALLOC_ENABLE=1 (c10 aligns buffers >= 2 MiB to 2 MiB and
#           madvises them as transparent huge pages: 512x fewer page faults)
#   thp+glibc  both
# and the PyTorch eager reference with and without THP_MEM_ALLOC_ENABLE=1.
# usage: [PRECISION=auto|fp32|bf16] scripts/ab_allocator.sh MODEL BATCH [ROUNDS] [STEPS] [REPEATS]
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. scripts/lib.sh
usage_if_asked "$self" "$@"
[ $# -le 5 ] || { echo "ab_allocator.sh: at most 5 arguments (MODEL BATCH ROUNDS STEPS REPEATS)" >&2; exit 2; }
model=${1:-resnet18} batch=${2:-128} rounds=${3:-2} steps=${4:-5} repeats=${5:-3} precision=${PRECISION:-auto}
need_count BATCH "$batch"; need_count ROUNDS "$rounds"; need_count STEPS "$steps"; need_count REPEATS "$repeats"; need_precision PRECISION "$precision"
need_tools
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mv_run() { env "$@" target/release/microvision bench throughput --model "$model" --batch "$batch" --precision "$precision" --steps "$steps" --repeats "$repeats" | tail -n 1; }
py_run() { (cd pytorch && env "$@" ../.venv/bin/python throughput.py --model "$model" --batch "$batch" --precision "$precision" --steps "$steps" --repeats "$repeats" | tail -n 1); }
for _ in $(seq "$rounds"); do
  mv_run X=1 >> "$out/tuned"
  mv_run GLIBC_TUNABLES= >> "$out/glibc"
  mv_run THP_MEM_ALLOC_ENABLE=1 >> "$out/thp"
  mv_run THP_MEM_ALLOC_ENABLE=1 GLIBC_TUNABLES= >> "$out/thp+glibc"
  py_run X=1 >> "$out/pytorch"
  py_run THP_MEM_ALLOC_ENABLE=1 >> "$out/pytorch+thp"
done
.venv/bin/python - "$out" "$model" "$batch" "$precision" <<'PY'
import json, os, statistics, sys
out, model, batch, precision = sys.argv[1:5]
rows = {}
for name in ["tuned", "glibc", "thp", "thp+glibc", "pytorch", "pytorch+thp"]:
    recs = [json.loads(l) for l in open(os.path.join(out, name))]
    rows[name] = {k: statistics.median([v for r in recs for v in r[k]]) for k in ("train", "infer")}
base = rows["pytorch"]
print(f"{model} batch {batch} {precision}, medians over all timings; ratio to pytorch eager (default env)")
for name, r in rows.items():
    print(f"  {name:<12} train {r['train']:8.0f} img/s ({r['train'] / base['train']:.2f}x)   "
          f"infer {r['infer']:8.0f} img/s ({r['infer'] / base['infer']:.2f}x)")
PY
