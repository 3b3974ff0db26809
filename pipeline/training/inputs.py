"""What the trainer asks of a kind of data: the seam between training and data.

The trainer (trainer.py, epochs.py, averages.py) trains on anything that supplies, for a fold's
rows and a recipe phase, the examples as a dataset (augmented for training, or as predict sees
them), and how a batch from those datasets reaches the model on the device. Images (vision.py)
are one such kind; a table or text is another: a kind of data is a class with these methods,
never a branch in the trainer. The model side of the seam (layer groups, the pooled features of
a frozen body for precomputed activations, the classifier) is models.py's."""
from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.recipe import Phase, Recipe


class Inputs(Protocol):
    def dataset(self, rows: np.ndarray, labels: np.ndarray | None, phase: Phase, recipe: Recipe, dev: Device,
                augment: int | None = None) -> torch.utils.data.Dataset:
        """The examples at `rows` (with their `labels`, if given) as phase `phase` trains on them:
        augmented with this seed, or as predict sees them (augment None)."""

    def placer(self, model: torch.nn.Module, dev: Device) -> Callable[..., torch.Tensor]:
        """Place `model` on the device; returns what turns a batch of the datasets' examples into
        the model's input there."""

    def on_device(self, prepare: Callable[..., torch.Tensor], seed: int, dev: Device) -> Callable[..., torch.Tensor]:
        """`prepare` for training batches: with the augmentation the device does itself (seeded),
        if any."""
