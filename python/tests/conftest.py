"""Fixtures: a small synthetic CIFAR-10 in the official binary layout (a class signal in the red
plane, so short trainings learn), tiny configs, and the `microvision` binary of this checkout."""

from __future__ import annotations

import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BINARY = REPO / "target" / "release" / "microvision"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(path: pathlib.Path, n: int, seed: int) -> None:
    """`n` records of label byte + 3,072 pixels; the label shifts the red plane's mean."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    pixels = rng.integers(0, 128, size=(n, 3072), dtype=np.uint8)
    pixels[:, :1024] += (labels * 12)[:, None]
    np.concatenate([labels[:, None], pixels], axis=1).tofile(path)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("data")
    d = root / "cifar-10-batches-bin"
    d.mkdir()
    for i in range(1, 6):
        write_cifar(d / f"data_batch_{i}.bin", 64, i)
    write_cifar(d / "test_batch.bin", 64, 99)
    (d / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
    return root


@pytest.fixture()
def config_file(tmp_path, data_root) -> pathlib.Path:
    """A 2-epoch SimpleCNN config on the synthetic data, runs under tmp_path/runs."""
    path = tmp_path / "tiny.toml"
    path.write_text(
        f"""name = "py"
[data]
root = "{data_root}"
batch_size = 32
download = false
official_files = false
[train]
epochs = 2
seed = 7
threads = 1
log_every = 2
[output]
runs_dir = "{tmp_path / 'runs'}"
"""
    )
    return path


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs this checkout's `microvision` binary."""
    assert BINARY.exists(), f"{BINARY} missing: build it first (cargo build --release)"
    full_env = {**os.environ, **(env or {})}
    full_env.pop("MICROVISION_DATA", None)
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, env=full_env)


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    """The configs here name their data; `make` exports MICROVISION_DATA, which would replace it."""
    monkeypatch.delenv("MICROVISION_DATA", raising=False)
