"""Submissions in exactly the competition's format: the rows, order and header of sample_submission.csv."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import PipelineError
from .competition import Submission
from .files import write_csv


def read_sample(path: Path, spec: Submission, test_ids: list[str]) -> pd.DataFrame:
    """The sample submission, checked against the test folder: same ids, each once."""
    if not path.is_file():
        raise PipelineError(f"{path}: sample submission missing; download the competition data again")
    sample = pd.read_csv(path, dtype=str)
    if list(sample.columns) != [spec.id_column, spec.label_column]:
        raise PipelineError(f"{path}: header {list(sample.columns)}, expected "
                            f"{[spec.id_column, spec.label_column]}; fix `submission` in the definition")
    ids = sample[spec.id_column]
    if ids.duplicated().any():
        raise PipelineError(f"{path}: id {ids[ids.duplicated()].iloc[0]!r} appears twice; "
                            f"download the competition data again")
    extra, missing = set(ids) - set(test_ids), set(test_ids) - set(ids)
    if extra or missing:
        what = (f"{len(extra)} ids with no test image (e.g. {sorted(extra)[0]!r})" if extra else
                f"{len(missing)} test images not listed (e.g. {sorted(missing)[0]!r})")
        raise PipelineError(f"{path}: its ids don't match the test folder: {what}; "
                            f"check the test folder and the layout's test_id setting")
    return sample


def build(test_ids: list[str], probs: np.ndarray, classes: list[str], sample: pd.DataFrame,
          spec: Submission) -> pd.DataFrame:
    """Predicted class per test id, in the sample's row order."""
    pred = pd.Series(np.asarray(classes)[probs.argmax(1)], index=test_ids)
    out = pd.DataFrame({spec.id_column: sample[spec.id_column].to_numpy()})
    out[spec.label_column] = pred.loc[out[spec.id_column]].to_numpy()
    return out


def validate(sub: pd.DataFrame, sample: pd.DataFrame, classes: list[str], spec: Submission) -> None:
    if list(sub.columns) != list(sample.columns):
        raise PipelineError(f"submission header {list(sub.columns)} != sample's {list(sample.columns)}")
    if len(sub) != len(sample) or not (sub[spec.id_column].to_numpy() == sample[spec.id_column].to_numpy()).all():
        raise PipelineError("submission rows differ from the sample submission's ids or order")
    bad = ~sub[spec.label_column].isin(classes)
    if bad.any():
        raise PipelineError(f"submission has label {sub[spec.label_column][bad].iloc[0]!r}, not a class")


def write(sub: pd.DataFrame, path: Path) -> None:
    """Atomically: a failed or interrupted run never leaves a partial submission."""
    write_csv(path, sub)
