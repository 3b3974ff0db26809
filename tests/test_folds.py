import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.folds import assign_folds


def labels():
    return pd.Series(["a"] * 50 + ["b"] * 25 + ["c"] * 10)


def test_folds_are_stratified():
    folds = assign_folds(labels(), 5, seed=0)
    table = pd.crosstab(labels(), folds)
    assert (table.loc["a"] == 10).all() and (table.loc["b"] == 5).all() and (table.loc["c"] == 2).all()


def test_folds_are_reproducible_and_seeded():
    assert (assign_folds(labels(), 5, 0) == assign_folds(labels(), 5, 0)).all()
    assert not (assign_folds(labels(), 5, 0) == assign_folds(labels(), 5, 1)).all()


def test_too_few_images_for_the_folds_is_an_error():
    with pytest.raises(PipelineError, match="'c' has 10 images"):
        assign_folds(labels(), 11, 0)
