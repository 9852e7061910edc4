"""The four notebooks (notebooks/), each run top to bottom on tiny synthetic data with its
parameters cell overridden, and committed without outputs."""

from __future__ import annotations

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
PACKAGE = pathlib.Path(__file__).resolve().parents[1]  # python/, holding microvision/


@pytest.fixture(autouse=True)
def kernels_find_the_package(monkeypatch):
    """The kernels run in notebooks/: they get this checkout's package by an absolute path."""
    paths = [str(PACKAGE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))


def test_there_are_four_notebooks():
    assert [n.name[0] for n in NOTEBOOKS] == ["1", "2", "3", "4"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state (a progress bar's); clear it"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged `parameters`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path, data_root):
    nb = nbformat.read(path, as_version=4)
    small = f'''DATA_ROOT = {str(data_root)!r}
RUNS_DIR = {str(tmp_path / "runs")!r}
OUT_DIR = {str(tmp_path / "out")!r}
EPOCHS = 1
SET = {{"data.batch_size": 32, "data.eval_batch_size": 64, "train.threads": 1, "data.official_files": False}}
STOP_AT_STEP = 3
PER_CLASS = 2
MODELS = ["simple_cnn"]
SEEDS = [0, 1]'''
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(small))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
