#!/usr/bin/env bash
# Installs what microvision needs to build and run, idempotently:
#   - a Python venv holding requirements.lock (every package pinned with its hashes; made from
#     requirements.in by `make lock`): the PyPI wheel torch==2.11.0 (LibTorch 2.11.0 + its Python
#     API, used by the build and by the PyTorch-oracle tests), torchvision, tensorboard and mlflow
#     (oracles and servers of the tests), maturin, pandas, tqdm, pytest and the notebook tools;
#   - with --browser: Debian's chromium (the HTML report test opens report.html in it), when missing;
#   - with --postgres: Debian's postgresql server (the tuning test shares a study through it), when
#     missing;
#   - with --python: the extension of the Python package `microvision` (python/, the Rust core
#     through PyO3), built into python/microvision/ of this checkout, which the venv then imports;
#   - `.venv` in the checkout, a link to that venv, and `.venv/libtorch`, a stable link to the
#     libtorch directory inside it (`.cargo/config.toml` points tch's build at it).
# The venv lives in a per-user cache (MICROVISION_CACHE, default ~/.cache/microvision) so that a
# fresh clone on the same machine (CI) reuses it instead of downloading ~5.5 GB again.
set -euo pipefail
cd "$(dirname "$0")/.."
browser=0 python=0 postgres=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    --python) python=1 ;;
    --postgres) postgres=1 ;;
    *) echo "setup.sh: unknown argument '$arg': expected --browser, --python or --postgres" >&2; exit 2 ;;
  esac
done

TORCH_VERSION=2.11.0
PY=${PYTHON:-python3}
py_tag=$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
if [ "$py_tag" != py311 ]; then
  echo "setup.sh: $PY is Python ${py_tag#py}, but requirements.lock pins the packages for CPython 3.11;" \
    "set PYTHON to a Python 3.11 interpreter (e.g. PYTHON=python3.11 make test)" >&2
  exit 2
fi
cache=${MICROVISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/microvision}
venv="$cache/venv-torch$TORCH_VERSION-$py_tag"
# The stamp names the lock file's checksum, so a changed lock re-runs the (idempotent) install.
stamp="$venv/.ready-$(md5sum < requirements.lock | cut -c1-8)"

if [ ! -f "$stamp" ]; then
  echo "setup: installing torch==$TORCH_VERSION into $venv (one time, about 5.5 GB)" >&2
  mkdir -p "$cache"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  # The PyPI wheel is the CUDA build; its nvidia-* dependencies are what libtorch_cuda.so loads,
  # so the same binary runs on CPU-only machines and uses a GPU where one is visible.
  "$venv/bin/pip" install --disable-pip-version-check --progress-bar off --require-hashes \
    -r requirements.lock >&2
  touch "$stamp"
fi

if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
fi
# Resolved: the link lives inside the shared venv, so a path through this checkout's `.venv`
# would dangle for every other clone once this one is deleted (a CI clone, say).
torch_dir=$(.venv/bin/python -c 'import os, importlib.util as u; print(os.path.realpath(os.path.dirname(u.find_spec("torch").origin)))')
ln -sfn "$torch_dir" .venv/libtorch

# Installs Debian package $1 (for $2), as root or through sudo, refreshing the package lists
# once if the first try fails; a failure is reported, not fatal (the test that needs it says so).
apt_install() {
  echo "setup: installing Debian's $1 (for $2)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if ! { $sudo apt-get install -y --no-install-recommends "$1" >&2 ||
         { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends "$1" >&2; }; }; then
    echo "setup: could not install $1; $2 needs it (apt-get install $1)" >&2
  fi
}

if [ "$browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium "the HTML report test"
fi
if [ "$postgres" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql "the tuning test's shared study"
fi

if [ "$python" = 1 ]; then
  # In place, per checkout: python/microvision/_core*.so next to the package's Python files, found
  # through PYTHONPATH=python (make test, make lab); nothing is installed into the shared venv, so
  # checkouts (a CI clone and yours) never replace each other's package.
  echo "setup: building the Python package's extension (python/)" >&2
  "$venv/bin/pip" uninstall -y -q microvision >/dev/null 2>&1 || true  # an install of earlier versions
  (cd python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" PYO3_PYTHON="$venv/bin/python" \
    CARGO_TARGET_DIR="$PWD/../target" cargo build --release --lib >&2)
  suffix=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  rm -f python/microvision/_core*.so
  cp target/release/lib_core.so "python/microvision/_core$suffix"
  # `import microvision` in the venv finds the checkout that ran this last (a .pth entry; make
  # test and make lab put their own checkout first with PYTHONPATH).
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$PWD/python" > "$site/microvision-checkout.pth"
fi
