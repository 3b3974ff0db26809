"""Rows of a table as a kind of data the trainer takes (training/inputs.py): one float32 array
[rows, columns] in memory, a batch of thousands of rows fetched as one slice (`__getitems__`,
which torch's loader calls with a batch's positions), never a Python call per row."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.recipe import Phase, Recipe


class Rows(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor | None):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return (self.x[i], self.y[i]) if self.y is not None else self.x[i]

    def __getitems__(self, positions: list[int]):
        at = torch.as_tensor(positions)
        return (self.x[at], self.y[at]) if self.y is not None else self.x[at]

    @staticmethod
    def collate(batch):
        return batch  # already one batch (__getitems__)


@dataclass
class TableInputs:
    x: np.ndarray  # float32 [rows, columns]: a fold's encoding of every training row (encoding.py)
    test: np.ndarray | None = None   # the test rows, encoded the same way
    encoding: Any = None             # the fold's Encoding: what the model's embeddings are sized by

    def dataset(self, rows: np.ndarray, labels: np.ndarray | None, phase: Phase, recipe: Recipe, dev: Device,
                augment: int | None = None) -> torch.utils.data.Dataset:
        """The rows at `rows`, the same for training and predicting: a table has no augmentation
        here (the embeddings' dropout regularises)."""
        x = torch.from_numpy(np.ascontiguousarray(self.x[rows]))
        return Rows(x, None if labels is None else torch.from_numpy(np.asarray(labels)[rows]))

    def placer(self, model: torch.nn.Module, dev: Device) -> Callable[..., torch.Tensor]:
        dev.place(model)
        return lambda x, flips=None: x.to(dev.device, non_blocking=True)

    def on_device(self, prepare: Callable[..., torch.Tensor], seed: int, dev: Device) -> Callable[..., torch.Tensor]:
        return prepare
