"""Per-class thresholds for multi-label metrics, tuned on out-of-fold predictions.

Coordinate ascent: every class starts at the metric's default threshold; then, class by class,
the threshold on a grid that scores best with the others held fixed is kept, round after round,
until a round changes nothing. A class moves only for a strict gain, so ties keep the default.
"""
from __future__ import annotations

import numpy as np

from pipeline.metrics import Metric

GRID = np.round(np.arange(0.02, 0.99, 0.02), 2)


def tune(labels: np.ndarray, probs: np.ndarray, metric: Metric, grid: np.ndarray = GRID,
         rounds: int = 5) -> np.ndarray:
    thresholds = np.full(probs.shape[1], metric.threshold, dtype=float)
    best = metric(labels, probs, thresholds)
    for _ in range(rounds):
        changed = False
        for c in range(probs.shape[1]):
            for t in grid:
                trial = thresholds.copy()
                trial[c] = t
                score = metric(labels, probs, trial)
                if metric.better(score, best):
                    best, thresholds, changed = score, trial, True
        if not changed:
            break
    return thresholds
