"""Runs from Python: training with a progress bar, a run's metrics as DataFrames, predictions on
torch tensors or NumPy arrays, and comparisons as DataFrames."""

from __future__ import annotations

import io
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from . import _core

Progress = Callable[[Mapping[str, float]], None]


class _Bar:
    """A tqdm bar (the notebook widget in Jupyter) over a run's optimizer steps, with the latest
    loss and, after each epoch, the validation accuracy."""

    def __init__(self) -> None:
        self.bar = None
        self.val = ""

    def __call__(self, event: Mapping[str, float]) -> None:
        from tqdm.auto import tqdm

        kind = event["kind"]
        if kind == "start":
            total = int(event["epochs"] * event["steps_per_epoch"])
            self.bar = tqdm(total=total, initial=int(event["start_step"]), unit="step")
        elif self.bar is None:
            return
        elif kind == "step":
            # update() keeps tqdm's rate limit (mininterval): no flood of redraws on fast steps.
            self.bar.set_postfix_str(f"epoch {int(event['epoch'])} loss {event['loss']:.4f}{self.val}", refresh=False)
            self.bar.update(int(event["step"]) - self.bar.n)
        elif kind == "epoch":
            self.val = f" val acc {event['val_acc']:.4f}"
        elif kind == "end":
            self.bar.set_postfix_str(f"test acc {event['test_acc']:.4f}")
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _progress(progress: bool | Progress) -> tuple[Progress | None, _Bar | None]:
    if progress is True:
        bar = _Bar()
        return bar, bar
    if callable(progress):
        return progress, None
    return None, None


def train(config: _core.Config, progress: bool | Progress = True) -> Run:
    """Trains a new run of `config` to the end and evaluates it on the test split.

    `progress`: True for a progress bar, False for none, or a callable given a dict per event
    (`kind`: start, step, epoch, end). An interrupt (Ctrl-C, the kernel's stop button) finishes
    the current step, saves `last` and raises `Interrupted`; `resume(run_dir)` continues.
    """
    callback, bar = _progress(progress)
    try:
        return Run(_core.train(config, callback))
    finally:
        if bar is not None:
            bar.close()


def resume(
    run: str | os.PathLike | Run,
    progress: bool | Progress = True,
    set: Mapping[str, Any] | Sequence[str] | str | None = None,
) -> Run:
    """Continues a run from its last checkpoint (a finished run is returned as it is). `set`
    overrides the settings a resume may change (e.g. `{"optim.lr": 0.01}` after a divergence);
    they are recorded in the run's env.json."""
    callback, bar = _progress(progress)
    try:
        return Run(_core.resume(os.fspath(run), callback, set))
    finally:
        if bar is not None:
            bar.close()


class Run:
    """A run directory: config, provenance, metrics, and the verbs that act on it."""

    def __init__(self, path: str | os.PathLike | _core.Run) -> None:
        self._run = path if isinstance(path, _core.Run) else _core.Run(os.fspath(path))

    def __fspath__(self) -> str:
        return os.fspath(self._run.dir)

    def __repr__(self) -> str:
        return f"Run({os.fspath(self._run.dir)!r})"

    @property
    def dir(self) -> str:
        """The run directory."""
        return os.fspath(self._run.dir)

    @property
    def name(self) -> str:
        """The run directory's name."""
        return self._run.name

    @property
    def config(self) -> _core.Config:
        """The run's resolved config."""
        return self._run.config

    @property
    def env(self) -> dict[str, Any] | None:
        """`env.json`: code, libraries, machine, data MD5s, normalisation, seed."""
        return self._run.env

    @property
    def classes(self) -> list[str]:
        """The class names, in label order."""
        return self._run.classes

    @property
    def finished(self) -> bool:
        """Whether the run has its final test evaluation."""
        return self._run.finished

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per epoch: train/val loss and accuracy, learning rate, images/s, seconds."""
        return pd.DataFrame(self._run.history()["epochs"])

    @property
    def steps(self) -> pd.DataFrame:
        """The logged training steps: step, loss, learning rate."""
        return pd.DataFrame(self._run.history()["steps"])

    @property
    def test(self) -> dict[str, Any] | None:
        """The final test evaluation (`eval.json`), once the run finished."""
        return self._run.history()["eval"]

    def eval(self, checkpoint: str = "last", set: Mapping[str, Any] | Sequence[str] | None = None) -> dict[str, Any]:
        """Evaluates `checkpoint` ("last" or "best") on the test split, with `set` overrides for
        this evaluation only (e.g. `{"train.tta": 2}`); writes and returns the evaluation, with
        the file it wrote (`file`), the checkpoint's `epoch` and whether the weights were the
        run's average (`averaged`)."""
        e = self._run.eval(checkpoint, set)
        e["file"] = os.fspath(e["file"])
        return e

    def predict(self, images: torch.Tensor | np.ndarray, checkpoint: str = "last") -> torch.Tensor:
        """Class probabilities `(N, classes)` of images `(N, C, H, W)` (or one `(C, H, W)`):
        uint8 pixels 0..255 or floats in [0, 1], at the run's input size. NumPy arrays are
        shared with torch without a copy."""
        x = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        one = x.dim() == 3
        probs = self._run.predict(x.unsqueeze(0) if one else x, checkpoint)
        return probs[0] if one else probs

    def predict_files(self, paths: Iterable[str | os.PathLike], checkpoint: str = "last", top: int = 5):
        """The `top` classes of each image file, as `(class, probability)` lists."""
        return self._run.predict_files([os.fspath(p) for p in paths], checkpoint, top)

    def export(self, format: str = "safetensors", checkpoint: str = "last", out: str | None = None) -> dict[str, str]:
        """Exports the model ("safetensors" or "torchscript") with its `model.json`; returns
        `{"file": ..., "description": ...}` (paths)."""
        return {k: os.fspath(v) for k, v in self._run.export(format, checkpoint, out).items()}

    def explain(
        self,
        methods: Sequence[str] | None = None,
        layer: str | None = None,
        cls: str | int | None = None,
        per_class: int = 3,
        wrong: int = 12,
        test_images: int = 0,
        limit: int = 0,
        perplexity: float = 30.0,
        checkpoint: str = "best",
    ) -> dict[str, Any]:
        """What the model looks at and how it sees the classes (``microvision explain``): maps of
        ``methods`` ("gradcam", "gradcam++", "scorecam", "saliency", "smoothgrad", "rollout",
        "embeddings" or "all"; default all but scorecam) into ``RUN/explain`` and ``RUN/plots``.
        Returns the summary: per method its layer, images, seconds, file and figures; the
        embedding's kNN accuracies."""
        return self._run.explain(
            None if methods is None else list(methods), layer, None if cls is None else str(cls),
            per_class, wrong, test_images, limit, perplexity, checkpoint,
        )

    def plots(self) -> list[str]:
        """Draws the run's plots into `RUN/plots/`; returns the files."""
        return [os.fspath(p) for p in self._run.plots()]

    def report(self, out: str | None = None) -> str:
        """Writes the run's HTML report; returns its path."""
        return os.fspath(self._run.report(out))


def sync_wandb(
    runs: Iterable[str | os.PathLike | Run],
    project: str | None = None,
    entity: str | None = None,
    mode: str | None = None,
) -> list[dict[str, Any]]:
    """Sends runs to Weights & Biases as `microvision sync wandb` (config, metrics.jsonl, plots,
    eval.json, config.toml); `None` takes each run's `track.wandb_*` value, WANDB_MODE overrides
    the mode. One dict per run: run_id, url (online) or offline_dir (upload with `wandb sync`)."""
    return _core.sync_wandb([os.fspath(r) for r in runs], project, entity, mode)


def compare(runs: Iterable[str | os.PathLike | Run], plot_dir: str | None = None) -> pd.DataFrame:
    """Compares runs as `microvision compare --format csv`: runs that differ only in seed are one
    row (mean and std columns); the overlaid validation curves go to `plot_dir`."""
    csv = _core.compare_csv([os.fspath(r) for r in runs], plot_dir)
    return pd.read_csv(io.StringIO(csv))
