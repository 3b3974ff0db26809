"""Competition metrics, computed as Kaggle scores them.

A metric takes the labels (class indices, or 0/1 rows for tags: see labels.py) and the predicted
probabilities. A multi-label metric scores yes/no decisions instead: it has a `threshold`, the
default above which a tag is predicted, which the run tunes per class (thresholds.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import f1_score

from pipeline.training.tasks import decide

KAGGLE_EPS = 1e-15  # Kaggle's log loss replaces p by max(min(p, 1 - 1e-15), 1e-15)


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]  # (labels, probs, or decisions if thresholded) -> score
    higher_is_better: bool = True
    threshold: float | None = None  # set: a multi-label metric of tags predicted above this threshold

    def __call__(self, labels: np.ndarray, probs: np.ndarray, thresholds=None) -> float:
        probs = np.asarray(probs)
        if self.threshold is not None:
            probs = decide(probs, self.threshold if thresholds is None else thresholds)
        return float(self.fn(np.asarray(labels), probs))

    @property
    def key(self) -> tuple:
        """What a stage key holds of the metric: its name and how it decides (not its function)."""
        return self.name, self.higher_is_better, self.threshold

    def better(self, a: float, b: float) -> bool:
        """Is score `a` better than score `b`?"""
        return a > b if self.higher_is_better else a < b


def multiclass_log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Kaggle's multi-class log loss: each row divided by its sum, then clipped to
    [1e-15, 1 - 1e-15]; the mean of -log p(true class). Two classes: the binary log loss."""
    p = probs / probs.sum(1, keepdims=True)
    p = np.clip(p[np.arange(len(labels)), labels], KAGGLE_EPS, 1 - KAGGLE_EPS)
    return float(-np.log(p).mean())


def mean_fbeta(labels: np.ndarray, predicted: np.ndarray, beta: float = 2.0) -> float:
    """F-beta of each image's predicted tags against its true ones, averaged over images (as
    sklearn's fbeta_score(average="samples"); an image with no true and no predicted tag scores 0).
    Vectorised: threshold tuning calls it thousands of times."""
    y, p = labels.astype(bool), predicted.astype(bool)
    tp = (y & p).sum(1)
    fn, fp = (y & ~p).sum(1), (~y & p).sum(1)
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return float(np.where(denom > 0, (1 + b2) * tp / np.maximum(denom, 1), 0.0).mean())


micro_f1 = Metric("micro_f1", lambda y, p: f1_score(y, p.argmax(1), average="micro"))
accuracy = Metric("accuracy", lambda y, p: float((p.argmax(1) == y).mean()))
log_loss = Metric("log_loss", multiclass_log_loss, higher_is_better=False)
# planet: F2 per image favours recall, so a low starting threshold (the usual 0.2)
f2 = Metric("f2", mean_fbeta, threshold=0.2)


def root_mean_square_percentage_error(y: np.ndarray, p: np.ndarray) -> float:
    """Rossmann's metric: sqrt(mean(((y - p) / y)^2)) over the rows whose true value is not 0 (a
    closed store's day does not count)."""
    y, p = np.asarray(y, np.float64).reshape(-1), np.asarray(p, np.float64).reshape(-1)
    scored = y != 0
    return float(np.sqrt(np.mean(((y[scored] - p[scored]) / y[scored]) ** 2))) if scored.any() else float("nan")


rmspe = Metric("rmspe", root_mean_square_percentage_error, higher_is_better=False)
rmse = Metric("rmse", lambda y, p: float(np.sqrt(np.mean((np.asarray(p).reshape(-1) - y) ** 2))), higher_is_better=False)
