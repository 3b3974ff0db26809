"""Ways to combine runs' predictions, each fitted on some OOF rows and applied to others.

Predictions are combined as the runs store them: a regression's in its transformed units (log1p
of sales for RMSPE, where a mean is a geometric mean of sales), classes and tags as
probabilities. P below is [members, rows, columns].

- mean: every run alike.
- select: ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, 2004): start from the
  best run alone, then add, with replacement, whichever run most improves the metric of the
  average, for a fixed number of picks, and keep the best prefix; a run's weight is its share
  of the picks. Done on bags of
  the rows (bootstrap samples) and the weights averaged over the bags, so a blend of many runs
  does not chase the OOF rows' noise. (The paper bags the models; with two or three runs a
  bag of models is often a single run, so these bags are of rows.)
- stack: a regularised linear model on the runs' predictions: ridge regression for a number,
  multinomial logistic regression on the log-probabilities for classes, one logistic
  regression per tag on the logits for tags."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

METHODS = ("select", "mean", "stack")
BAGS, PICKS = 10, 25  # (weights in steps of 1/25 at the finest)
EPS = 1e-6


@dataclass
class Weights:
    """A weighted mean of the runs."""
    weights: np.ndarray

    def apply(self, P: np.ndarray) -> np.ndarray:
        return np.tensordot(self.weights, P, axes=1)

    def described(self) -> dict:
        return {"weights": [round(float(w), 4) for w in self.weights]}


@dataclass
class Stack:
    """A fitted linear model per target column set (sklearn estimators) on the runs' predictions."""
    kind: str                     # "regression", "classes", "tags"
    models: list = field(default_factory=list)
    columns: int = 1

    def apply(self, P: np.ndarray) -> np.ndarray:
        if self.kind == "regression":
            return self.models[0].predict(P[:, :, 0].T)[:, None]
        if self.kind == "classes":
            model = self.models[0]
            out = np.full((P.shape[1], self.columns), EPS)
            out[:, model.classes_] = model.predict_proba(_features(P))
            return out / out.sum(1, keepdims=True)
        return np.stack([m(P[:, :, t]) if callable(m) else m.predict_proba(_logit(P[:, :, t]).T)[:, 1]
                         for t, m in enumerate(self.models)], 1)

    def described(self) -> dict:
        if self.kind == "regression":
            m = self.models[0]
            return {"coefficients": [round(float(c), 4) for c in m.coef_], "intercept": round(float(m.intercept_), 4)}
        return {"model": f"{self.kind}: logistic regression on the runs' "
                         f"{'log-probabilities' if self.kind == 'classes' else 'logits'}"}


def _features(P: np.ndarray) -> np.ndarray:
    """[rows, members x classes]: each run's log-probabilities."""
    return np.log(np.clip(P, EPS, 1)).transpose(1, 0, 2).reshape(P.shape[1], -1)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit(method: str, P: np.ndarray, y: np.ndarray, kind: str, score: Callable, better: Callable,
        seed: int = 0) -> Weights | Stack:
    """The `method` fitted on these rows: `score(y, p)` is the metric, `better(a, b)` whether
    a beats b; `kind` "regression", "classes" or "tags" (for stack)."""
    if method == "mean":
        return Weights(np.full(len(P), 1 / len(P)))
    if method == "select":
        rng = np.random.default_rng(seed)
        bags = [select(P[:, rows], y[rows], score, better) for rows in
                (rng.integers(0, P.shape[1], P.shape[1]) for _ in range(BAGS))]
        return Weights(np.mean(bags, 0))
    return stack(P, y, kind)


def select(P: np.ndarray, y: np.ndarray, score: Callable, better: Callable, picks: int = PICKS) -> np.ndarray:
    """One bag's weights: `picks` picks with replacement from the best single run, each the run
    whose addition scores best even when none improves (a run worth a fifth of the blend is only
    found after four picks of another), the best-scoring prefix of the picks kept."""
    alone = [score(y, p) for p in P]
    first = int(max(range(len(P)), key=lambda i: Ranked(alone[i], better)))
    counts, total = np.zeros(len(P)), P[first].copy()
    counts[first] = 1
    kept, best = counts.copy(), alone[first]
    for _ in range(picks - 1):
        n = counts.sum()
        trials = [score(y, (total + p) / (n + 1)) for p in P]
        pick = int(max(range(len(P)), key=lambda i: Ranked(trials[i], better)))
        counts[pick] += 1
        total += P[pick]
        if better(trials[pick], best):
            kept, best = counts.copy(), trials[pick]
    return kept / kept.sum()


class Ranked:
    """A score ordered by `better`, for max()."""
    def __init__(self, value: float, better: Callable):
        self.value, self.better = value, better

    def __lt__(self, other: "Ranked") -> bool:
        return self.better(other.value, self.value)


def stack(P: np.ndarray, y: np.ndarray, kind: str) -> Stack:
    from sklearn.linear_model import LogisticRegression, Ridge
    if kind == "regression":
        return Stack(kind, [Ridge(alpha=1.0).fit(P[:, :, 0].T, y)])
    if kind == "classes":
        model = LogisticRegression(C=1.0, max_iter=1000).fit(_features(P), y)
        return Stack(kind, [model], P.shape[2])
    models = []
    for t in range(P.shape[2]):
        if len(np.unique(y[:, t])) < 2:  # a tag always (or never) there in these rows: the runs' mean
            models.append(lambda Pt: Pt.mean(0))
        else:
            models.append(LogisticRegression(C=1.0, max_iter=1000).fit(_logit(P[:, :, t]).T, y[:, t]))
    return Stack(kind, models, P.shape[2])
