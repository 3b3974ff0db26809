"""Held-out accuracy of a submission: the share of test ids whose label equals the hidden answer.

The answers CSV's first column is the id and its second the label (e.g. `file,label`); the
submission must have columns of the same names and exactly the same ids, each once, or nothing is
scored. Labels are compared as text.

    .venv/bin/python benchmarks/heldout.py SUBMISSION.csv ANSWERS.csv
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd


def score(submission: pd.DataFrame, answers: pd.DataFrame) -> tuple[float, int]:
    """(accuracy, n); raises ValueError naming what does not match."""
    id_col, label_col = answers.columns[:2]
    missing_cols = [c for c in (id_col, label_col) if c not in submission.columns]
    if missing_cols:
        raise ValueError(f"submission has no column {missing_cols[0]!r} (its columns: {list(submission.columns)})")
    for name, frame in (("submission", submission), ("answers", answers)):
        repeated = frame[id_col][frame[id_col].duplicated()]
        if len(repeated):
            raise ValueError(f"{name}: {len(repeated)} ids appear more than once (e.g. {repeated.iloc[0]})")
    ours, theirs = set(submission[id_col]), set(answers[id_col])
    if ours != theirs:
        extra, missing = sorted(ours - theirs), sorted(theirs - ours)
        raise ValueError(f"ids differ: {len(missing)} answers have no prediction (e.g. {missing[:3]}), "
                         f"{len(extra)} predictions have no answer (e.g. {extra[:3]})")
    merged = answers.merge(submission[[id_col, label_col]], on=id_col, suffixes=("_true", "_pred"))
    right = merged[f"{label_col}_true"] == merged[f"{label_col}_pred"]
    return float(right.mean()), len(merged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submission")
    parser.add_argument("answers")
    args = parser.parse_args()
    read = lambda path: pd.read_csv(path, dtype=str, keep_default_na=False)  # noqa: E731  ids stay text
    try:
        accuracy, n = score(read(args.submission), read(args.answers))
    except ValueError as e:
        sys.exit(f"heldout: not scored: {e}")
    print(f"held-out accuracy {accuracy:.4f}  n={n}")


if __name__ == "__main__":
    main()
