"""Stratified K-fold assignment, seeded, so every stage and every later run sees the same split."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from . import PipelineError


def assign_folds(labels: pd.Series, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per row; each fold holds each class in proportion."""
    counts = labels.value_counts()
    if counts.min() < n_folds:
        raise PipelineError(f"class {counts.idxmin()!r} has {counts.min()} images, fewer than "
                            f"{n_folds} folds; use --folds {max(2, int(counts.min()))} or more data")
    folds = np.empty(len(labels), dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(skf.split(np.zeros(len(labels)), labels.to_numpy())):
        folds[valid] = k
    return folds
