"""What the stages ask of a run's data, whatever its kind: a `Source`. Images (vision/source.py)
and tables (tables/source.py) are the two; the stages name neither's internals."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.recipe import Recipe
from pipeline.training.inputs import Inputs
from pipeline.training.tasks import Task


class Source(Protocol):
    kind: str  # "images" or "table"

    def prepare(self, recipe: Recipe) -> None:
        """Make ready what training needs (decode the images at each phase's size)."""

    def inputs(self, rows: np.ndarray, fold: str = "") -> Inputs:
        """Every training example as the trainer takes it, for a fold that trains on `rows`
        (a table's encoding is fitted on those rows only)."""

    def model(self, recipe: Recipe, outputs: int, inputs: Inputs) -> torch.nn.Module:
        """A fresh model for `inputs`."""

    def load(self, path: Path, inputs: Inputs, dev: Device) -> tuple[torch.nn.Module, dict]:
        """The model a checkpoint holds, placed on `dev` for predicting, and the checkpoint."""

    def predict(self, model, ckpt: dict, inputs: Inputs, rows: np.ndarray | None, recipe: Recipe, dev: Device,
                task: Task, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """(predictions averaged over the test-time views, those of the plain view) for the training
        examples at `rows`, or every test example (None)."""
