import numpy as np
import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.training.folds import assign_folds
from pipeline.training.tasks import CLASSIFICATION, MULTILABEL

CLASSES = ["a", "b", "c"]


def labels():
    return np.array([0] * 50 + [1] * 25 + [2] * 10)


@pytest.mark.quick
def test_folds_are_stratified():
    folds = assign_folds(labels(), 5, 0, CLASSES, CLASSIFICATION)
    table = pd.crosstab(labels(), folds)
    assert (table.loc[0] == 10).all() and (table.loc[1] == 5).all() and (table.loc[2] == 2).all()


@pytest.mark.quick
def test_folds_are_reproducible_and_seeded():
    assert (assign_folds(labels(), 5, 0, CLASSES, CLASSIFICATION) == assign_folds(labels(), 5, 0, CLASSES, CLASSIFICATION)).all()
    assert not (assign_folds(labels(), 5, 0, CLASSES, CLASSIFICATION) == assign_folds(labels(), 5, 1, CLASSES, CLASSIFICATION)).all()


@pytest.mark.quick
def test_too_few_images_for_the_folds_is_an_error():
    with pytest.raises(PipelineError, match="'c' has 10 images"):
        assign_folds(labels(), 11, 0, CLASSES, CLASSIFICATION)


def tags(n=2000, seed=0):
    """Planet-like tags: a common one, two correlated ones, and rare ones of 10, 7 and 5 images."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 6), np.float32)
    y[:, 0] = rng.random(n) < 0.9
    y[:, 1] = rng.random(n) < 0.3
    y[:, 2] = y[:, 1] * (rng.random(n) < 0.5)
    for tag, count in ((3, 10), (4, 7), (5, 5)):
        y[rng.choice(n, count, replace=False), tag] = 1
    return y


@pytest.mark.quick
def test_iterative_stratification_spreads_every_tag_evenly():
    y = tags()
    folds = assign_folds(y, 5, 0, [str(i) for i in range(6)], MULTILABEL)
    per_fold = np.stack([y[folds == k].sum(0) for k in range(5)])  # [fold, tag]
    want = y.sum(0) / 5
    assert (np.abs(per_fold - want) <= np.maximum(1, 0.03 * want)).all()  # within one image, or 3%
    assert (per_fold[:, 5] == 1).all() and (per_fold[:, 3] == 2).all()  # rare tags: one or two per fold
    assert np.abs(np.bincount(folds) - 400).max() <= 2


@pytest.mark.quick
def test_iterative_stratification_beats_a_random_split_and_is_seeded():
    y = tags()
    folds = assign_folds(y, 5, 0, [str(i) for i in range(6)], MULTILABEL)
    random = np.random.default_rng(0).permutation(np.arange(len(y)) % 5)
    def spread(f): return sum(np.ptp([y[f == k, t].sum() for k in range(5)]) for t in range(6))
    assert spread(folds) < spread(random) / 3
    assert (assign_folds(y, 5, 0, list("abcdef"), MULTILABEL) == folds).all()
    assert not (assign_folds(y, 5, 1, list("abcdef"), MULTILABEL) == folds).all()
