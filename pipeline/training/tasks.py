"""What a model learns, said rather than guessed from an array's shape: each task owns its
targets (encode), its loss, the activation that turns outputs into predictions, each example's
loss (hard negatives, top losses), how examples group for sampling and folds (strata), how a
target reads (describe), and the columns its predictions take in oof_predictions.parquet.

- Classification: one class per example (binary included): class indices, softmax, cross-entropy.
- MultiLabel: any number of tags per example: 0/1 rows, a sigmoid per tag, binary cross-entropy.
- Regression: a float target, learnt through an optional transform (log1p: a target spread over
  orders of magnitude, as sales are) and predicted back through its inverse, clipped to a range."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline import PipelineError


def tags(label: str) -> list[str]:
    return label.split()


@dataclass(frozen=True)
class Classification:
    name = "classification"

    def encode(self, labels: pd.Series, classes: list[str]) -> np.ndarray:
        """Class indices [N] (int64)."""
        index = {c: i for i, c in enumerate(classes)}
        return labels.map(index).to_numpy(np.int64)

    def loss(self, out: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(out, y, label_smoothing=smoothing, reduction=reduction)

    def predictions(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(1)

    def example_losses(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """-log of the probability given to each example's class."""
        return -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))

    def strata(self, y: np.ndarray) -> np.ndarray:
        return y

    def guesses(self, p: np.ndarray) -> np.ndarray:
        return p.argmax(1)

    def describe(self, y_row, classes: list[str]) -> str:
        return classes[int(y_row)]

    def columns(self, classes: list[str]) -> list[str]:
        """The columns its predictions take in oof_ and test_predictions.parquet."""
        return list(classes)

    def in_units(self, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets and predictions as the competition's metric reads them: as they are here."""
        return y, p

    def labels(self, p: np.ndarray, classes: list[str], thresholds=None) -> list[str]:
        """What a submission's label column holds for predictions `p`: the likeliest class."""
        return list(np.asarray(classes)[p.argmax(1)])

    def wrong_label(self, values: pd.Series, classes: list[str]) -> str | None:
        """The first submitted label that is not one this task writes, or None."""
        bad = values[~values.isin(classes)]
        return None if bad.empty else f"{bad.iloc[0]!r}, not a class"


@dataclass(frozen=True)
class MultiLabel(Classification):
    name = "multilabel"

    def encode(self, labels: pd.Series, classes: list[str]) -> np.ndarray:
        """0/1 rows [N, C] (float32) from space-separated tags."""
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(labels), len(classes)), np.float32)
        for row, label in enumerate(labels):
            y[row, [index[t] for t in tags(label)]] = 1
        return y

    def loss(self, out: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
        target = y.float() * (1 - smoothing) + smoothing / 2  # smoothing pulls each 0/1 target towards 1/2
        each = F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(1)
        return each.sum() if reduction == "sum" else each.mean()

    def predictions(self, out: torch.Tensor) -> torch.Tensor:
        return out.sigmoid()

    def example_losses(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The mean binary cross-entropy over the tags."""
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(1)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """Its rarest tag (an example with a rare tag counts as rare); -1 for none."""
        counts = y.sum(0)
        rarity = np.where(y > 0, counts[None, :], np.inf)
        return np.where(y.any(1), rarity.argmin(1), -1)

    def guesses(self, p: np.ndarray) -> np.ndarray:
        return decide(p, 0.5)

    def describe(self, y_row, classes: list[str]) -> str:
        return " ".join(c for c, v in zip(classes, y_row) if v)

    def labels(self, p: np.ndarray, classes: list[str], thresholds=None) -> list[str]:
        """The tags at or above their thresholds (0.5 when none are tuned), space-separated."""
        chosen = decide(p, 0.5 if thresholds is None else thresholds)
        return [" ".join(np.asarray(classes)[row]) for row in chosen]

    def wrong_label(self, values: pd.Series, classes: list[str]) -> str | None:
        bad = [v for v in values if any(t not in classes for t in tags(v))]
        return f"{bad[0]!r}, not made of tags" if bad else None


TRANSFORMS = {None: (lambda y: y, lambda y: y), "log1p": (np.log1p, np.expm1)}


@dataclass(frozen=True)
class Regression:
    """A float target. The model learns `transform(target)` with a mean squared error, its output
    squashed into the transformed range (low, high) when given (fast.ai's y_range: a sigmoid
    scaled into it, so no prediction leaves what training saw); predictions are transformed back."""
    transform: str | None = None     # None or "log1p"
    low: float | None = None         # the target's range, in the target's own units
    high: float | None = None
    name = "regression"

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise PipelineError(f"regression transform {self.transform!r}; use one of {list(TRANSFORMS)}")
        if (self.low is None) != (self.high is None) or (self.low is not None and not self.low < self.high):
            raise PipelineError(f"regression range ({self.low}, {self.high}): give both ends, low < high")

    def encode(self, labels: pd.Series, classes=None) -> np.ndarray:
        """The transformed target [N] (float32): what the loss compares with."""
        values = pd.to_numeric(labels, errors="coerce").to_numpy(np.float64)
        if np.isnan(values).any():
            raise PipelineError(f"{int(np.isnan(values).sum())} targets are not numbers; a regression needs floats")
        return TRANSFORMS[self.transform][0](values).astype(np.float32)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Predictions (transformed, as the model makes them) back in the target's units, clipped."""
        out = TRANSFORMS[self.transform][1](np.asarray(y, np.float64))
        return out if self.low is None else np.clip(out, self.low, self.high)

    def _range(self) -> tuple[float, float] | None:
        if self.low is None:
            return None
        forward = TRANSFORMS[self.transform][0]
        return float(forward(self.low)), float(forward(self.high))

    def predictions(self, out: torch.Tensor) -> torch.Tensor:
        """The transformed target: the output, squashed into the transformed range when there is one."""
        out = out.float().squeeze(1)
        bounds = self._range()
        return out if bounds is None else bounds[0] + (bounds[1] - bounds[0]) * torch.sigmoid(out)

    def loss(self, out: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
        return F.mse_loss(self.predictions(out), y.float(), reduction=reduction)

    def example_losses(self, y: np.ndarray, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p).reshape(len(y)) - y) ** 2

    def strata(self, y: np.ndarray) -> np.ndarray:
        """Ten bins of the target's quantiles: folds and sampling see low and high targets alike."""
        edges = np.unique(np.quantile(y, np.linspace(0, 1, 11)[1:-1]))
        return np.searchsorted(edges, y, side="right")

    def guesses(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p).reshape(-1)

    def describe(self, y_row, classes=None) -> str:
        return f"{float(self.decode(np.array([y_row]))[0]):.6g}"

    def columns(self, classes=None) -> list[str]:
        return ["prediction"]

    def in_units(self, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets and predictions back in the target's units (sales, not log1p of sales): the
        competition's metric (RMSPE, RMSE) is defined on those."""
        return self.decode(y), self.decode(np.asarray(p).reshape(-1))

    def labels(self, p: np.ndarray, classes=None, thresholds=None) -> list[float]:
        """The predictions in the target's own units (transformed back, clipped to the range)."""
        return self.decode(np.asarray(p).reshape(-1)).tolist()

    def wrong_label(self, values: pd.Series, classes=None) -> str | None:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[~np.isfinite(numbers.to_numpy(float))]
        return None if bad.empty else f"{bad.iloc[0]!r}, not a number"


def decide(probs: np.ndarray, thresholds) -> np.ndarray:
    """Tags predicted per example: those at or above their class's threshold, and the most likely
    one when none is (every image has at least one tag in the competitions we know)."""
    out = probs >= np.asarray(thresholds)
    none = ~out.any(1)
    out[none, probs[none].argmax(1)] = True
    return out


CLASSIFICATION, MULTILABEL = Classification(), MultiLabel()

Task = Classification | MultiLabel | Regression  # (MultiLabel is a Classification by inheritance)
