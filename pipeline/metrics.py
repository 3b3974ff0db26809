"""Competition metrics. Each takes integer labels and class probabilities, as Kaggle scores them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.metrics import f1_score


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]  # (labels [N], probs [N, C]) -> score
    higher_is_better: bool = True

    def __call__(self, labels: np.ndarray, probs: np.ndarray) -> float:
        return float(self.fn(np.asarray(labels), np.asarray(probs)))

    def better(self, a: float, b: float) -> bool:
        """Is score `a` better than score `b`?"""
        return a > b if self.higher_is_better else a < b


micro_f1 = Metric("micro_f1", lambda y, p: f1_score(y, p.argmax(1), average="micro"))
accuracy = Metric("accuracy", lambda y, p: float((p.argmax(1) == y).mean()))


def example_losses(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each example's cross-entropy: -log of the probability given to its true class."""
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
