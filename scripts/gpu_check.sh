#!/usr/bin/env bash
# The GPU figures of issue #5, as one script for the device machine (its own PyTorch 2.11
# libtorch, no network, no CIFAR-10 copy):
#   1. training/inference images/s of microvision and PyTorch eager on the same GPU, alternating
#      (resnet18 batch 128, airbench94 batch 1024, bf16);
#   2. speedrun training time of microvision and of the plain-PyTorch reference (airbench94 and
#      muon recipes, bf16 both) on synthetic data of CIFAR-10's shape (timing only: accuracy is
#      meaningless, and random labels may make a run diverge);
#   3. the trainer end to end on CUDA: train, eval and lr-find on the synthetic data;
#   4. two ranks under torchrun on the GPU (the multi-process path on CUDA, through Gloo).
# Prepare here with `make gpu-bundle` (a stripped binary in .gpu/, ~9 MB), then run there with the
# device tool: command `bash scripts/gpu_check.sh`, carry [".gpu"]. Writes $OUT/gpu_check.log.
# usage: scripts/gpu_check.sh [ROUNDS]   (alternating rounds per throughput pair, default 2)
set -uo pipefail # no -e: a failed measurement prints "FAILED rc=N" and the others still run
self=$(realpath "$0")
cd "$(dirname "$0")/.."
. scripts/lib.sh
usage_if_asked "$self" "$@"
log=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$log") 2>&1
tee_pid=$!
finish() { exec >&- 2>&-; wait "$tee_pid"; } # the whole log is written before the command returns
trap finish EXIT
rounds=${1:-2}
need_count ROUNDS "$rounds"
bin=.gpu/microvision
[ -x "$bin" ] || { echo "gpu_check.sh: $bin is missing: run 'make gpu-bundle' here and carry .gpu" >&2; exit 2; }
py=${PYTHON:-python3}
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'

for pair in resnet18:128 airbench94:1024; do
  model=${pair%:*} batch=${pair#*:}
  for _ in $(seq "$rounds"); do
    echo "== $model batch $batch bf16: microvision"
    "$bin" bench throughput --model "$model" --batch "$batch" --precision bf16 --device cuda --steps 50 --repeats 5 |
      sed -n 1p || echo "FAILED rc=$?"
    echo "== $model batch $batch bf16: pytorch eager"
    (cd pytorch && "$py" throughput.py --model "$model" --batch "$batch" --precision bf16 --steps 50 --repeats 5 |
      sed -n 1p) || echo "FAILED rc=$?"
  done
done

synth=/tmp/synthetic-cifar
"$py" - "$synth/cifar-10-batches-bin" <<'PY'
import os, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
for name, n in [(f"data_batch_{i}.bin", 10000) for i in range(1, 6)] + [("test_batch.bin", 10000)]:
    rec = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, size=n)
    rec.tofile(os.path.join(out, name))
names = "airplane automobile bird cat deer dog frog horse ship truck".split()
open(os.path.join(out, "batches.meta.txt"), "w").write("\n".join(names) + "\n")
PY
[ $? -eq 0 ] || echo "FAILED: synthetic data"
# Evaluation: TTA on every image on both sides (tta_cutoff = 0), as the reference does.
for recipe in airbench94:configs/speedrun94.toml muon:configs/speedrun94_muon.toml; do
  name=${recipe%%:*} config=${recipe#*:}
  echo "== speedrun $name (synthetic data: times only): microvision"
  MICROVISION_DATA=$synth "$bin" bench speedrun -c "$config" --runs 3 --set train.tta_cutoff=0 |
    grep -v '^{' || echo "FAILED rc=$?"
  echo "== speedrun $name (synthetic data: times only): pytorch"
  (cd pytorch && "$py" speedrun.py --data "$synth" --recipe "$name" --runs 3 | grep -v '^{') || echo "FAILED rc=$?"
done

# The trainer's other paths on CUDA (synthetic data: they must run, the numbers mean nothing):
# a short training with its checkpoint and evaluation, and the LR finder (which once fed the
# model CPU images).
e2e=(--set output.runs_dir=/tmp/gpu-runs --set train.device=cuda --set train.epochs=1)
echo "== CUDA end to end (synthetic data): train, eval, lr-find"
MICROVISION_DATA=$synth "$bin" train -c configs/demo.toml "${e2e[@]}" | tail -n 3 || echo "FAILED train rc=$?"
run=$(ls -td /tmp/gpu-runs/demo-* 2>/dev/null | head -n 1)
[ -n "$run" ] && { "$bin" eval "$run" --checkpoint last | tail -n 2 || echo "FAILED eval rc=$?"; }
MICROVISION_DATA=$synth "$bin" lr-find -c configs/demo.toml "${e2e[@]}" --steps 30 | tail -n 2 ||
  echo "FAILED lr-find rc=$?"

# Two ranks on the GPU (torchrun; both on GPU 0 when there is one: each rank takes LOCAL_RANK
# modulo the GPUs), gradients through Gloo in host memory (NCCL is not bound): the multi-process
# path on CUDA must run and only rank 0 writes.
echo "== CUDA, two ranks under torchrun (synthetic data)"
MICROVISION_DATA=$synth "$py" -m torch.distributed.run --standalone --nproc-per-node=2 --no-python "$bin" train -c configs/demo.toml \
  "${e2e[@]}" --set output.runs_dir=/tmp/gpu-dist-runs | tail -n 3 || echo "FAILED two ranks rc=$?"
ls /tmp/gpu-dist-runs
