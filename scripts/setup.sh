#!/usr/bin/env bash
# Installs what microvision needs to build and run, idempotently:
#   - a Python venv holding the PyPI wheel torch==2.11.0 (LibTorch 2.11.0 + its Python API,
#     used by the build and by the PyTorch-oracle tests), numpy, safetensors and tensorboard
#     (the oracle that reads our event files);
#   - `.venv` in the checkout, a link to that venv, and `.venv/libtorch`, a stable link to the
#     libtorch directory inside it (`.cargo/config.toml` points tch's build at it).
# The venv lives in a per-user cache (MICROVISION_CACHE, default ~/.cache/microvision) so that a
# fresh clone on the same machine (CI) reuses it instead of downloading ~4 GB again.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
PY=${PYTHON:-python3}
py_tag=$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
cache=${MICROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/microvision}
venv="$cache/venv-torch$TORCH_VERSION-$py_tag"
packages="torch==$TORCH_VERSION numpy safetensors tensorboard"
# The stamp names the package list, so adding a package re-runs the (idempotent) install.
stamp="$venv/.ready-$(echo "$packages" | md5sum | cut -c1-8)"

if [ ! -f "$stamp" ]; then
  echo "setup: installing torch==$TORCH_VERSION into $venv (one time, about 4 GB)" >&2
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  # The PyPI wheel is the CUDA build; its nvidia-* dependencies are what libtorch_cuda.so loads,
  # so the same binary runs on CPU-only machines and uses a GPU where one is visible.
  "$venv/bin/pip" install --disable-pip-version-check --progress-bar off \
    $packages >&2
  touch "$stamp"
fi

if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
fi
torch_dir=$(.venv/bin/python -c 'import os, importlib.util as u; print(os.path.dirname(u.find_spec("torch").origin))')
ln -sfn "$torch_dir" .venv/libtorch
