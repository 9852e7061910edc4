"""microvision from Python: the Rust core's verbs (train, evaluate, predict, export, compare) on
the same LibTorch as PyTorch, so tensors cross without a copy.

    import microvision as mv
    cfg = mv.Config.load("configs/demo.toml", set={"train.epochs": 3})
    run = mv.train(cfg)                      # a progress bar; Ctrl-C / the kernel's stop saves `last`
    run.metrics                              # per-epoch DataFrame
    run.eval()["accuracy"]; run.predict(images)   # class probabilities, a torch tensor
    mv.compare([run, other])                 # seeds grouped: mean and std per recipe
    study = mv.tune("configs/demo.toml", "configs/demo.space.toml", trials=20)
    study.trials; study.best; study.report()     # DataFrame, best trial, plots and page
"""

import torch  # noqa: F401  (first: the extension uses the LibTorch that torch loads)

from . import data, models
from ._core import (
    CheckpointError,
    Config,
    ConfigError,
    DataError,
    Interrupted,
    MicrovisionError,
    __version__,
)
from ._run import Run, compare, resume, sync_wandb, train
from ._tune import Study, tune

__all__ = [
    "Config",
    "Run",
    "train",
    "resume",
    "compare",
    "sync_wandb",
    "tune",
    "Study",
    "data",
    "models",
    "MicrovisionError",
    "ConfigError",
    "DataError",
    "CheckpointError",
    "Interrupted",
    "__version__",
]
