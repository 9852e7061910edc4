# microvision: every target installs what it needs (scripts/setup.sh is idempotent).
#
# MICROVISION_DATA: directory holding cifar-10-batches-bin/ (default: ../shared/data when it
# exists, else ./data, where the dataset is downloaded on first use).

SHELL := /bin/bash
CARGO ?= cargo
MICROVISION_DATA ?= $(if $(wildcard ../shared/data/cifar-10-batches-bin),../shared/data,data)
# Absolute, so that programs started elsewhere (the notebooks' kernels in notebooks/) find it too.
override MICROVISION_DATA := $(abspath $(MICROVISION_DATA))
export MICROVISION_DATA
BIN := target/release/microvision

.PHONY: setup build demo test test-real lint lock lab bench-pytorch gpu-bundle

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --release

# The main job: a short SimpleCNN training on real CIFAR-10 (plots drawn at the end), evaluation of
# its final checkpoint and the HTML report.
demo: build
	$(BIN) train -c configs/demo.toml
	$(BIN) eval "$$(ls -td runs/demo-* | head -n 1)" --checkpoint last
	$(BIN) report "$$(ls -td runs/demo-* | head -n 1)"

# The whole default test suite: formatting and clippy; the criterion benches built; the Rust tests (unit, integration, PyTorch
# oracles, TensorBoard, MLflow and Chromium against our files, CLI end to end on synthetic data);
# the Python package's tests and the notebooks, run top to bottom on tiny data.
test:
	@./scripts/setup.sh --browser --python --postgres
	$(CARGO) fmt --check
	$(CARGO) fmt --check --manifest-path python/Cargo.toml
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) build --release --benches
	$(CARGO) test --release
	PYTHONPATH=$(CURDIR)/python .venv/bin/python -m pytest -q python/tests

# Long checks on the real dataset (marked #[ignore] in the default suite).
test-real: setup
	$(CARGO) test --release -- --ignored --test-threads=1

lint: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

# requirements.lock from requirements.in: every Python package pinned with its hashes (CPython
# 3.11, x86_64 Linux, as the project's machines have). Needs the network; commit the result.
lock: setup
	.venv/bin/pip install --disable-pip-version-check -q uv==0.13.9
	.venv/bin/uv pip compile requirements.in --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

# JupyterLab on the notebooks, with the Python package of this checkout (PYTHONPATH).
lab:
	@./scripts/setup.sh --python
	PYTHONPATH=$(CURDIR)/python .venv/bin/jupyter lab notebooks/

# PyTorch eager reference: training images/s of a model (same batch and precision as ours).
# make bench-pytorch [MODEL=resnet18] [BATCH=128] [PRECISION=auto|fp32|bf16] [ROUNDS=3]
# (plain `=`: a MODEL or BATCH in the environment does not change it; the command line does)
MODEL = simple_cnn
BATCH = 128
PRECISION = auto
ROUNDS = 3
bench-pytorch: build
	./scripts/compare_throughput.sh "$(MODEL)" "$(BATCH)" "$(PRECISION)" "$(ROUNDS)"

# A stripped binary (~9 MB, under the device tool's 64 MiB) for scripts/gpu_check.sh on a GPU
# machine, which runs it against its own PyTorch 2.11 libtorch.
gpu-bundle: build
	mkdir -p .gpu
	strip -o .gpu/microvision $(BIN)
