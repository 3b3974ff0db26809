"""Which training images an epoch sees: oversampling of rare classes for imbalanced labels.

`oversample` in a recipe: "none"; "max" (every class replicated up to the largest one, as the
fast.ai notes recommend); or a power p in [0, 1] for a gentler push: class c is drawn
max_count * (n_c / max_count) ** p times (p=0 is "max", p=1 is "none"). Classes are only ever
oversampled, never cut, and validation folds are never touched.
"""
from __future__ import annotations

import numpy as np

from pipeline import PipelineError


def class_targets(counts: np.ndarray, oversample: str | float) -> np.ndarray:
    """Images per class in one epoch."""
    if oversample == "none":
        return counts
    if oversample == "max":
        power = 0.0
    else:
        power = float(oversample)
        if not 0.0 <= power <= 1.0:
            raise PipelineError(f"oversample={oversample!r}: use 'none', 'max' or a power in [0, 1]")
    top = counts.max()
    return np.maximum(counts, np.round(top * (counts / top) ** power)).astype(int)


def epoch_indices(labels: np.ndarray, oversample: str | float, rng: np.random.Generator) -> np.ndarray:
    """Positions into `labels` making up one epoch (the loader shuffles them): each class's images
    repeated whole, then a random selection without replacement for the remainder, so no image
    is favoured over another of its class."""
    if oversample == "none":
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    out = []
    for c, target in zip(classes, class_targets(counts, oversample)):
        members = np.flatnonzero(labels == c)
        whole, rest = divmod(target, len(members))
        out += [np.tile(members, whole), rng.choice(members, rest, replace=False)]
    return np.concatenate(out)
