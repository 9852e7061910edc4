"""Datasets on disk as torch tensors (CIFAR-10/100, the MNIST family, image folders)."""

from __future__ import annotations

import os

import torch

from . import _core


def load(name: str = "cifar10", split: str = "train", root: str | os.PathLike | None = None):
    """One split of a dataset: `(images, labels, classes)`, images uint8 `(N, C, H, W)` and
    labels int64 `(N,)`. `root` defaults to `$MICROVISION_DATA`, else `data`; nothing is
    downloaded (`microvision data download NAME` does that)."""
    images, labels, classes = _core.load_data(name, split, None if root is None else os.fspath(root))
    return images, labels, classes


def mean_std(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images `(N, C, H, W)`, in [0, 1]."""
    channels = images.shape[1]
    total, squares, count = torch.zeros(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64), 0
    for chunk in images.split(4096):  # a chunk at a time: 50,000 images as float64 would be 1.2 GB
        x = chunk.to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
        count += x.numel() // channels
    mean = total / count
    return mean.tolist(), (squares / count - mean * mean).clamp(min=0).sqrt().tolist()


def augment_preview(config: _core.Config, count: int = 40, out: str | os.PathLike = ".") -> list[str]:
    """A grid of `count` training images as the config's augmentation draws them, saved as
    `augment_preview.png` and `.svg` in `out`; returns the files (PNG first)."""
    return [os.fspath(p) for p in _core.augment_preview(config, count, os.fspath(out))]
