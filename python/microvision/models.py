"""The model registry: what is there, and any model built as a TorchScript module."""

from __future__ import annotations

import os
import tempfile

import pandas as pd
import torch

from . import _core


def list() -> pd.DataFrame:  # noqa: A001  (mv.models.list(), as the issue names it)
    """The registered models: name, parameters, MFLOPs per 32x32 image, source."""
    return pd.DataFrame(_core.list_models())


def build(name: str, num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> torch.jit.ScriptModule:
    """A freshly initialised registered model as a TorchScript module (evaluation mode)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        _core.save_model_torchscript(name, path, num_classes, in_channels, input_size)
        return torch.jit.load(path)
