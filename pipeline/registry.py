"""The run registry under data/registry/. submissions.parquet holds each Kaggle submission of a
competition (one row per submission ref): the run it came from, its message, status and
leaderboard scores, so a report can set them beside the cross-validation scores."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .files import write_parquet

COLUMNS = ["competition", "ref", "run", "file_name", "description", "date", "status",
           "public_score", "private_score", "error"]


def submissions_file(workdir: Path) -> Path:
    return Path(workdir) / "data" / "registry" / "submissions.parquet"


def read_submissions(workdir: Path, competition: str | None = None) -> pd.DataFrame:
    f = submissions_file(workdir)
    df = pd.read_parquet(f) if f.exists() else pd.DataFrame(columns=COLUMNS)
    return df if competition is None else df[df["competition"] == competition].reset_index(drop=True)


def record_submissions(workdir: Path, rows: list[dict]) -> pd.DataFrame:
    """Merge `rows` in by (competition, ref): a value given replaces the stored one, a value
    missing (None) keeps it, so the run recorded at submit time survives later listings."""
    new = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("public_score", "private_score"):  # Kaggle sends scores as text, "" before scoring
        new[col] = pd.to_numeric(new[col].replace("", None), errors="coerce")
    old = read_submissions(workdir)
    merged = (pd.concat([old, new], ignore_index=True) if len(old) else new).astype({"ref": "int64"})
    merged = merged.groupby(["competition", "ref"], sort=False, as_index=False).last()  # last non-null
    write_parquet(submissions_file(workdir), merged[COLUMNS])
    return merged[COLUMNS]
