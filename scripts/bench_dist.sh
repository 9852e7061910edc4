#!/usr/bin/env bash
# Images/s of one training run on two processes (torchrun, Gloo, one thread each) against one
# process with two threads and one process with two replicas, the same global batch, alternating
# for ROUNDS rounds: docs/results.md's multi-process figures.
# usage: scripts/bench_dist.sh [CONFIG] [ROUNDS] [--set key=value ...]   (MICROVISION_DATA = data root)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/speedrun94.toml}; rounds=${2:-3}; shift $(( $# > 2 ? 2 : $# ))
bin=target/release/microvision
out=$(mktemp -d /tmp/bench_dist.XXXXXX)
common=(-c "$config" --set train.epochs=1 --set "output.runs_dir=\"$out\"" --set train.progress=false "$@")
rate() { # the newest run's training img/s (epoch 1)
  local run; run=$(ls -td "$out"/*/ | head -1)
  python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(round([x for x in r if x.get("split")=="train"][0]["img_per_s"]))' "$run/metrics.jsonl"
}
echo "$(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p') config $config"
for round in $(seq "$rounds"); do
  "$bin" train "${common[@]}" --set train.threads=2 >/dev/null 2>&1; a=$(rate)
  .venv/bin/torchrun --standalone --nproc-per-node=2 --no-python "$bin" train "${common[@]}" --set train.threads=1 >/dev/null 2>&1; b=$(rate)
  "$bin" train "${common[@]}" --set train.threads=2 --set train.replicas=2 >/dev/null 2>&1; c=$(rate)
  echo "round $round: one process, 2 threads $a img/s; two ranks, 1 thread each $b img/s; 2 replicas $c img/s"
done
rm -rf "$out"
