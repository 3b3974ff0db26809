"""Hard-negative mining: the training images the model gets most wrong, scored as predict
scores them, to be added again to the epochs of a mining phase (recipe.mining_round)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.core.device import Device
from pipeline.core.files import write_csv
from pipeline.training.epochs import validate
from pipeline.training.folds import FoldData
from pipeline.training.tasks import Task


def hardest(labels: np.ndarray, probs: np.ndarray, fraction: float, task: Task) -> np.ndarray:
    """Positions of the `fraction` of examples with the highest loss, hardest first."""
    loss = task.example_losses(labels, probs)
    n = max(1, round(fraction * len(labels)))
    return np.argsort(-loss, kind="stable")[:n]


def mine_hard_examples(net, plain_ds, data: FoldData, fraction: float, prepare: Callable, dev: Device,
                       batch_size: int, csv: Path) -> np.ndarray:
    """Score the fold's training images as predict would (no augmentation), return positions
    (into data.train_idx) of the hardest, and write them to `csv` for a user to look at."""
    task = data.task
    _, probs = validate(net, plain_ds, batch_size, prepare, dev, task)
    labels = data.labels[data.train_idx]
    picked = hardest(labels, probs, fraction, task)
    rows = data.train_idx[picked]
    names = data.classes or ([str(c) for c in range(probs.shape[1])] if probs.ndim == 2 else None)
    guesses = task.guesses(probs[picked])
    if not dev.group.main:
        return picked
    write_csv(csv, pd.DataFrame({
        "id": data.ids[rows] if data.ids is not None else rows,
        "label": [task.describe(y, names) for y in labels[picked]],
        "predicted": [task.describe(g, names) for g in guesses],
        "loss": task.example_losses(labels[picked], probs[picked])}))
    return picked
