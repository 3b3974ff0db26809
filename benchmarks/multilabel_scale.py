"""Planet-sized multi-label bookkeeping: iterative stratification of 40,479 images x 17 tags into
5 folds, and per-class threshold tuning (thresholds stage: once on all OOF, then once per fold on
the other four) on synthetic predictions with planet's tag frequencies.

    python benchmarks/multilabel_scale.py
"""
import time

import numpy as np

from pipeline.metrics import f2
from pipeline.stages.thresholds import tune
from pipeline.training.folds import iterative_folds

# planet's train_v2.csv tag counts (17 tags, 40,479 images)
COUNTS = {"primary": 37513, "clear": 28431, "agriculture": 12315, "road": 8071, "water": 7411,
          "partly_cloudy": 7261, "cultivation": 4547, "habitation": 3660, "haze": 2697, "cloudy": 2089,
          "bare_ground": 862, "selective_logging": 340, "artisinal_mine": 339, "blooming": 332,
          "slash_burn": 209, "conventional_mine": 100, "blow_down": 101}
N = 40479

rng = np.random.default_rng(0)
y = np.stack([rng.random(N) < c / N for c in COUNTS.values()], 1).astype(np.float32)
y[~y.any(1), 0] = 1
t0 = time.time()
folds = iterative_folds(y, 5, seed=0)
t_folds = time.time() - t0
per_fold = np.stack([y[folds == k].sum(0) for k in range(5)])
worst = np.abs(per_fold - y.sum(0) / 5).max()

# predictions: a noisy model, better on common tags
noise = rng.normal(0, 1, y.shape) * np.linspace(0.8, 2.0, y.shape[1])
probs = 1 / (1 + np.exp(-(np.where(y > 0, 1.5, -1.5) + noise)))
t0 = time.time()
tuned = tune(y, probs, f2)
t_tune = time.time() - t0
t0 = time.time()
held = [f2(y[folds == k], probs[folds == k], tune(y[folds != k], probs[folds != k], f2)) for k in range(5)]
t_held = time.time() - t0
print(f"iterative stratification, {N} images x {y.shape[1]} tags, 5 folds: {t_folds:.1f} s; "
      f"largest deviation of a tag's count in a fold from its share: {worst:.1f} images")
print(f"threshold tuning on all OOF: {t_tune:.1f} s; F2 {f2(y, probs):.4f} at 0.2 -> {f2(y, probs, tuned):.4f} tuned")
print(f"each fold with thresholds tuned on the other four: {t_held:.1f} s; F2 {np.mean(held):.4f}")
