"""K-fold assignment, seeded, so every stage and every later run sees the same split: stratified
by class, or for tags by iterative stratification, so each fold holds each tag in proportion;
near duplicates (vision/duplicates.py), given as groups, each in one fold."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from pipeline import PipelineError
from pipeline.training.inputs import Inputs
from pipeline.training.tasks import Classification, MultiLabel, Task


def assign_folds(y: np.ndarray, n_folds: int, seed: int, classes: list[str] | None, task: Task,
                 groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index per example, stratified by the task's strata: class indices, a regression
    target's quantile bins, or for tags (0/1 rows) iterative stratification. With `groups` (each
    example's group, named by the position of its first example), each group is split as its
    first example and all of it goes to that one's fold: a twin is never validated on after
    training on the other."""
    if groups is not None:
        first, member = np.unique(groups, return_inverse=True)
        return assign_folds(y[first], n_folds, seed, classes, task)[member]
    if isinstance(task, MultiLabel):
        return iterative_folds(y, n_folds, seed)
    strata = task.strata(y)
    counts = np.bincount(strata, minlength=len(classes or ()))
    present = counts[counts > 0]
    if present.min() < n_folds:
        at = int(np.flatnonzero(counts == present.min())[0])
        rare = f"class {classes[at]!r}" if isinstance(task, Classification) else f"target bin {at}"
        raise PipelineError(f"{rare} has {present.min()} images, fewer than "
                            f"{n_folds} folds; use --folds {max(2, int(present.min()))} or more data")
    folds = np.empty(len(y), dtype=np.int64)
    skf = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, valid) in enumerate(skf.split(np.zeros(len(y)), strata)):
        folds[valid] = k
    return folds


def time_folds(days: np.ndarray, n_folds: int, horizon: int) -> np.ndarray:
    """Time-ordered folds: fold K-1 holds the last `horizon` days of the data (the competition's
    split: the test is the period that follows), fold K-2 the `horizon` days before those, and so
    on; -1 the rows before every block, trained on, never validated. Fold k trains on the rows
    before its block only (training_rows): a model never sees the days after those it is scored on."""
    end = int(days.max()) + 1
    folds = np.full(len(days), -1, dtype=np.int64)
    for k in range(n_folds):
        stop = end - (n_folds - 1 - k) * horizon
        folds[(days >= stop - horizon) & (days < stop)] = k
    if not (folds == -1).any() or any(not (folds == k).any() for k in range(n_folds)):
        span = end - int(days.min())
        raise PipelineError(f"{n_folds} time-ordered folds of {horizon} days need more than {n_folds * horizon} days "
                            f"of training data; it spans {span}: use --folds {max(1, span // horizon - 1)} or fewer")
    return folds


def training_rows(folds: np.ndarray, k: int, split: str) -> np.ndarray:
    """The rows fold k trains on: every other fold's, or under a time split those before its block."""
    return np.flatnonzero(folds < k if split == "time" else folds != k)


def iterative_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011). The rarest tag still to
    place goes first: each image carrying it goes to the fold that most lacks that tag (ties: the
    fold most lacking images, then at random), and the fold's wants for all of the image's tags
    drop. Rare tags are spread before common ones can crowd the folds. Images without tags fill
    the folds last."""
    rng = np.random.default_rng(seed)
    y = y.astype(bool)
    n = len(y)
    if n < n_folds:
        raise PipelineError(f"{n} training images, fewer than {n_folds} folds; use --folds {max(2, n)}")
    want_images = np.full(n_folds, n / n_folds)
    want_tags = np.tile(y.sum(0) / n_folds, (n_folds, 1))  # [fold, tag]
    folds = np.full(n, -1)
    left = y.copy()  # tags of images not yet placed
    while left.any():
        counts = left.sum(0)
        tag = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        for i in rng.permutation(np.flatnonzero(left[:, tag])):
            k = _neediest(want_tags[:, tag], want_images, rng)
            folds[i] = k
            want_tags[k] -= y[i]
            want_images[k] -= 1
            left[i] = False
    for i in rng.permutation(np.flatnonzero(folds < 0)):
        k = _neediest(want_images, want_images, rng)
        folds[i] = k
        want_images[k] -= 1
    return folds


def _neediest(want: np.ndarray, want_images: np.ndarray, rng: np.random.Generator) -> int:
    top = np.flatnonzero(want == want.max())
    if len(top) > 1:
        top = top[want_images[top] == want_images[top].max()]
    return int(rng.choice(top)) if len(top) > 1 else int(top[0])


@dataclass
class FoldData:
    inputs: Inputs           # every training example, as its kind of data offers them (inputs.py)
    labels: np.ndarray       # the task's targets: class indices, 0/1 rows of tags, or floats (tasks.py)
    train_idx: np.ndarray
    valid_idx: np.ndarray
    task: Task
    ids: np.ndarray | None = None       # image ids and class names, for the files a user reads
    classes: list[str] | None = None

    @property
    def multilabel(self) -> bool:
        return isinstance(self.task, MultiLabel)
