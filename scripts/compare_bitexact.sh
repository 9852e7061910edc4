#!/usr/bin/env bash
# Whether a change kept training results bit for bit: trains two short recipes on real CIFAR-10
# with an earlier binary and with this checkout's, and compares what they wrote (the `last`
# checkpoint's weight and optimizer CRC32Cs, the test accuracy, metrics.jsonl without timings).
# Recipe A is configs/demo.toml; B adds AutoAugment, a cosine schedule, AdamW, reflect padding,
# alternating flips and EMA. Build the earlier binary in a worktree, e.g.:
#   git worktree add /tmp/old REV && (cd /tmp/old && ln -s "$PWD/.venv" .venv && cargo build --release)
# usage: MICROVISION_DATA=DIR scripts/compare_bitexact.sh OLD_BINARY [NEW_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "" | -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
old=$1 new=${2:-target/release/microvision}
: "${MICROVISION_DATA:?set MICROVISION_DATA to the directory holding cifar-10-batches-bin}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(--set train.epochs=2 --set data.limit_train=10000 --set data.limit_test=2000)
recipe_b=(--set augment.policy=autoaugment --set schedule.name=cosine --set optim.name=adamw --set optim.lr=0.002
  --set data.pad_mode=reflect --set data.flip_mode=alternate --set train.ema_decay=0.99)
status=0
for recipe in A B; do
  extra=()
  [ "$recipe" = B ] && extra=("${recipe_b[@]}")
  for side in old new; do
    bin=$old
    [ "$side" = new ] && bin=$new
    log="$out/$recipe-$side.log"
    "$bin" train -c configs/demo.toml "${common[@]}" "${extra[@]}" --set "output.runs_dir=$out/$recipe-$side" \
      >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  done
  .venv/bin/python - "$out/$recipe-old"/* "$out/$recipe-new"/* "$recipe" <<'PY' || status=1
import json, pathlib, sys
a, b, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
state = lambda d: json.loads((d / "checkpoints" / "last.state.json").read_text())
acc = lambda d: json.loads((d / "eval.json").read_text())["accuracy"]
timing = {"img_per_s", "epoch_secs", "secs", "eval_secs"}
rows = lambda d: [{k: v for k, v in json.loads(l).items() if k not in timing} for l in (d / "metrics.jsonl").read_text().splitlines()]
crc = lambda d: (state(d)["weights_crc32c"], state(d)["optim_crc32c"])
same = crc(a) == crc(b) and rows(a) == rows(b) and acc(a) == acc(b)
print(f"recipe {name}: {'the same' if same else 'DIFFERENT'}: checkpoint CRCs {crc(a) == crc(b)}, metrics "
      f"{rows(a) == rows(b)}, test accuracy {acc(a):.4f} -> {acc(b):.4f}")
sys.exit(0 if same else 1)
PY
done
exit $status
