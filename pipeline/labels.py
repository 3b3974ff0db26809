"""Labels as the model learns them, for the two kinds of task.

Single-label (one class per image, binary included): a class index per image; softmax over the
classes, cross-entropy. Multi-label (space-separated tags, any number per image): a 0/1 row per
image; one sigmoid per class, binary cross-entropy. Everything downstream tells them apart by
shape: a 1-d array of indices or a 2-d array of 0/1 rows.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


def tags(label: str) -> list[str]:
    return label.split()


def encode(labels: pd.Series, classes: list[str], multilabel: bool) -> np.ndarray:
    """Class indices [N] (int64), or 0/1 rows [N, C] (float32) for space-separated tags."""
    index = {c: i for i, c in enumerate(classes)}
    if not multilabel:
        return labels.map(index).to_numpy(np.int64)
    y = np.zeros((len(labels), len(classes)), np.float32)
    for row, label in enumerate(labels):
        y[row, [index[t] for t in tags(label)]] = 1
    return y


def discover(labels: pd.Series, multilabel: bool) -> list[str]:
    """The classes a competition leaves unlisted: its distinct training labels (tags), sorted."""
    return sorted({t for label in labels for t in tags(label)} if multilabel else set(labels))


def label_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    if y.ndim == 2:  # label smoothing pulls each 0/1 target towards 1/2
        target = y.float() * (1 - smoothing) + smoothing / 2
        out = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(1)
        return out.sum() if reduction == "sum" else out.mean()
    return F.cross_entropy(logits, y, label_smoothing=smoothing, reduction=reduction)


def probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    return logits.sigmoid() if multilabel else logits.softmax(1)


def example_losses(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each example's loss: -log of the probability given to its true class, or for tags the
    mean binary cross-entropy over the classes."""
    if y.ndim == 2:
        p = np.clip(probs, 1e-12, 1 - 1e-12)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(1)
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))


def decide(probs: np.ndarray, thresholds) -> np.ndarray:
    """Tags predicted per image: those at or above their class's threshold, and the most likely
    one when none is (every image has at least one tag in the competitions we know)."""
    out = probs >= np.asarray(thresholds)
    none = ~out.any(1)
    out[none, probs[none].argmax(1)] = True
    return out


def strata(y: np.ndarray) -> np.ndarray:
    """One group per image, for sampling and for picking examples of every kind: its class, or
    for tags its rarest tag (so an image with a rare tag counts as rare)."""
    if y.ndim == 1:
        return y
    counts = y.sum(0)
    rarity = np.where(y > 0, counts[None, :], np.inf)
    return np.where(y.any(1), rarity.argmin(1), -1)


def describe(y_row: np.ndarray | int, classes: list[str]) -> str:
    """A label as a user reads it: the class name, or the tags."""
    if np.ndim(y_row) == 0:
        return classes[int(y_row)]
    return " ".join(c for c, v in zip(classes, y_row) if v)
