#!/usr/bin/env bash
# Alternates `microvision bench speedrun` and the plain-PyTorch reference (pytorch/speedrun.py) on
# the same recipe, ROUNDS times each (seeds 0..ROUNDS-1), and prints the median training times,
# their ratio (microvision / PyTorch; lower is better) and the mean test accuracies.
# usage: scripts/compare_speedrun.sh [ROUNDS] [EPOCHS] [RECIPE]
#   RECIPE: airbench94 (configs/speedrun94.toml, the default) or muon (configs/speedrun94_muon.toml);
#   EPOCHS: 0 or omitted = the recipe's own (10 / 8); fewer shortens both schedules alike.
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. scripts/lib.sh
usage_if_asked "$self" "$@"
[ $# -le 3 ] || { echo "compare_speedrun.sh: at most 3 arguments (ROUNDS EPOCHS RECIPE)" >&2; exit 2; }
rounds=${1:-3} epochs=${2:-0} recipe=${3:-airbench94}
need_count ROUNDS "$rounds"; need_count EPOCHS "$epochs" 0
case $recipe in
  airbench94) config=configs/speedrun94.toml ;;
  muon) config=configs/speedrun94_muon.toml ;;
  *) echo "compare_speedrun.sh: RECIPE = '$recipe': expected airbench94 or muon" >&2; exit 2 ;;
esac
need_tools
data=${MICROVISION_DATA:-data}
[ -f "$data/cifar-10-batches-bin/test_batch.bin" ] || {
  echo "compare_speedrun.sh: no CIFAR-10 under MICROVISION_DATA = '$data' (expected $data/cifar-10-batches-bin/)" >&2; exit 2; }
out=$(mktemp -d)
echo "logs of both sides: $out" >&2
ours_epochs=()
[ "$epochs" -gt 0 ] && ours_epochs=(--set "train.epochs=$epochs")
for seed in $(seq 0 $((rounds - 1))); do
  target/release/microvision bench speedrun --config "$config" --runs 1 --set "train.seed=$seed" ${ours_epochs[@]+"${ours_epochs[@]}"} \
    | tee -a "$out/ours.log" | tail -n 1 >> "$out/ours.jsonl"
  (cd pytorch && ../.venv/bin/python speedrun.py --data "$(cd .. && realpath "$data")" --recipe "$recipe" --seed "$seed" --epochs "$epochs") \
    | tee -a "$out/ref.log" | tail -n 1 >> "$out/ref.jsonl"
done
.venv/bin/python - "$out" "$recipe" <<'PY'
import json, statistics, sys
out, recipe = sys.argv[1], sys.argv[2]
def runs(name):
    return [r for line in open(f"{out}/{name}.jsonl") for r in json.loads(line)["runs"]]
ours, ref = runs("ours"), runs("ref")
for label, rs in (("microvision", ours), ("pytorch", ref)):
    secs = [r["train_secs"] for r in rs]
    accs = [r["test_acc"] * 100 for r in rs]
    print(f"{label:<12} train {statistics.median(secs):7.1f} s (median of {len(secs)})  "
          f"eval {statistics.median(r['eval_secs'] for r in rs):5.1f} s  test acc {statistics.mean(accs):.2f}%  "
          f"[{', '.join(f'{a:.2f}' for a in accs)}]")
def precisions(name):
    recs = [json.loads(line) for line in open(f"{out}/{name}.jsonl")]
    return sorted({r["precision"] for r in recs})
mine, theirs = precisions("ours"), precisions("ref")
print(f"precision: microvision {', '.join(mine)}, pytorch {', '.join(theirs)}"
      + ("" if mine == theirs else "  (DIFFERENT: the ratio compares unlike runs)"))
ratio = statistics.median(r["train_secs"] for r in ours) / statistics.median(r["train_secs"] for r in ref)
print(f"speedrun ({recipe}) training time ratio microvision / pytorch: {ratio:.2f} (alternating, same machine)")
PY
