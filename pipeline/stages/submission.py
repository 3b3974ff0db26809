"""Submissions in exactly the competition's format: the rows, order and header of the sample
submission (sample_submission.csv, or as the competition spells it), holding a class, tags, a
class's probability, or a probability per class (see competition.Submission)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.competition import SAMPLE, Submission
from pipeline.core.files import write_csv
from pipeline.training.tasks import CLASSIFICATION, Task


# Kaggle's spellings of the sample submission over the years, matched in any case; looked for when
# a competition keeps the default name and its data folder has no file of that name
SAMPLE_NAMES = (SAMPLE, "sampleSubmission.csv", "sample_submission.csv.zip", "sampleSubmission.csv.zip",
                "sample_submission.zip", "sampleSubmission.zip")


def find_sample(data_dir: Path, spec: Submission) -> Path | None:
    """The sample submission in `data_dir`: the file `spec.sample` names, or, when that is the
    default and absent, the first of SAMPLE_NAMES there. None if there is none."""
    named = data_dir / spec.sample
    if named.is_file():
        return named
    if spec.sample != SAMPLE or not data_dir.is_dir():
        return None  # a name the definition chose is the name
    files = {p.name.lower(): p for p in data_dir.iterdir() if p.is_file()}
    return next((files[n.lower()] for n in SAMPLE_NAMES if n.lower() in files), None)


def sample_file(data_dir: Path, spec: Submission) -> Path:
    """find_sample, or an error saying what was looked for and where to name the file."""
    found = find_sample(data_dir, spec)
    if found is not None:
        return found
    if spec.sample != SAMPLE:
        raise PipelineError(f"{data_dir / spec.sample}: sample submission missing; download the competition data "
                            f"again, or fix Submission(sample=\"...\") in the competition's competition.py")
    raise PipelineError(f"{data_dir}: no sample submission (tried {', '.join(SAMPLE_NAMES)}, in any case); "
                        f"name yours with Submission(sample=\"...\") in the competition's competition.py")


def read_sample(path: Path, spec: Submission, test_ids: list[str], classes: list[str] | None,
                test_file: Path | None = None) -> pd.DataFrame:
    """The sample submission, checked against the test folder (same ids, each once), or a
    table's `test_file`, and against the definition (its header). A missing `path` is looked for
    under Kaggle's other spellings beside it (sample_file), so `data_dir / spec.sample` finds
    sampleSubmission.csv too."""
    path = path if path.is_file() else sample_file(path.parent, spec)
    try:  # a zipped CSV (sample_submission.csv.zip) is read as it is
        sample = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, zipfile.BadZipFile) as e:  # pandas' parser and decoding errors are ValueErrors
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PipelineError(f"{path}: not a readable CSV ({reason}); download the competition data again") from None
    test, unit = ("the test folder", "test image") if test_file is None else (test_file.name, "test row")
    header = list(sample.columns)
    if spec.per_class:
        got = header[1:]
        if header[:1] != [spec.id_column] or (classes is not None and sorted(got) != sorted(classes)):
            extra, missing = sorted(set(got) - set(classes or got)), sorted(set(classes or got) - set(got))
            raise PipelineError(f"{path}: header should be {spec.id_column} and one column per class"
                                + (f"; unknown columns {extra[:3]}" if extra else "")
                                + (f"; no column for {missing[:3]}" if missing else "")
                                + "; fix `submission` or `classes` in the definition")
    elif header != [spec.id_column, spec.label_column]:
        raise PipelineError(f"{path}: header {header}, expected "
                            f"{[spec.id_column, spec.label_column]}; fix `submission` in the definition")
    ids = sample[spec.id_column]
    repeated = ids[ids.duplicated()].unique()
    if len(repeated):
        raise PipelineError(f"{path}: {len(repeated)} ids appear more than once (e.g. {', '.join(repeated[:3])}); "
                            f"the sample lists each {unit} once: download the competition data again")
    extra, missing = set(ids) - set(test_ids), set(test_ids) - set(ids)
    if extra or missing:
        what = (f"{len(extra)} ids with no {unit} (e.g. {sorted(extra)[0]!r})" if extra else
                f"{len(missing)} {unit}s not listed (e.g. {sorted(missing)[0]!r})")
        fix = ("check the test folder and the layout's test_id setting" if test_file is None else
               "download the data again, or check `id` in the definition")
        raise PipelineError(f"{path}: its ids don't match {test}: {what}; {fix}")
    return sample


def submitted_probabilities(probs: np.ndarray, spec: Submission) -> np.ndarray:
    """The probabilities as written: clipped to [clip, 1 - clip], rows renormalised. Scores of
    out-of-fold predictions use the same, so CV measures what is submitted."""
    if not spec.clip:
        return probs
    p = np.clip(probs, spec.clip, 1 - spec.clip)
    return p / p.sum(1, keepdims=True) if spec.per_class else p


def build(test_ids: list[str], probs: np.ndarray, classes: list[str], sample: pd.DataFrame,
          spec: Submission, *, task: Task = CLASSIFICATION, thresholds=None) -> pd.DataFrame:
    """One row per sample id, in the sample's order, with what `spec` says the rows hold: the
    probabilities themselves, or the labels the task makes of them (tasks.py)."""
    columns = task.columns(classes)
    probs = pd.DataFrame(submitted_probabilities(np.asarray(probs).reshape(len(test_ids), len(columns)), spec),
                         index=test_ids, columns=columns)
    probs = probs.loc[sample[spec.id_column]]
    out = pd.DataFrame({spec.id_column: sample[spec.id_column].to_numpy()})
    if spec.per_class:
        for c in sample.columns[1:]:
            out[c] = probs[c].to_numpy()
    elif spec.probability_of is not None:
        out[spec.label_column] = probs[spec.probability_of].to_numpy()
    else:
        out[spec.label_column] = task.labels(probs.to_numpy(), classes, thresholds)
    return out


def validate(sub: pd.DataFrame, sample: pd.DataFrame, classes: list[str], spec: Submission,
             task: Task = CLASSIFICATION) -> None:
    """What Kaggle would reject, or score as garbage, caught before it costs a submission."""
    if list(sub.columns) != list(sample.columns):
        raise PipelineError(f"submission header {list(sub.columns)} != sample's {list(sample.columns)}")
    if len(sub) != len(sample) or not (sub[spec.id_column].to_numpy() == sample[spec.id_column].to_numpy()).all():
        raise PipelineError("submission rows differ from the sample submission's ids or order")
    values = sub.drop(columns=spec.id_column)
    if spec.per_class or spec.probability_of is not None:
        p = values.apply(pd.to_numeric, errors="coerce").to_numpy(float)
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
            raise PipelineError("submission has a probability that is not a number in [0, 1]")
        if spec.per_class and not np.allclose(p.sum(1), 1, atol=1e-4):
            raise PipelineError(f"submission row {int(np.abs(p.sum(1) - 1).argmax()) + 2}: "
                                f"probabilities sum to {p.sum(1)[np.abs(p.sum(1) - 1).argmax()]:.4f}, not 1")
        return
    wrong = task.wrong_label(values[spec.label_column], classes)
    if wrong:
        raise PipelineError(f"submission has label {wrong}")


def write(sub: pd.DataFrame, path: Path) -> None:
    """Atomically: a failed or interrupted run never leaves a partial submission."""
    write_csv(path, sub, float_format="%.6g")
