"""The run registry under data/registry/, read by `pipeline report`.

runs.parquet: one row per run and fold: what ran (competition, run, when, the git commit and
whether the tree was dirty, the torch and timm versions, the resolved settings and their short hash), how it ended (finished,
failed, interrupted, running) and what it scored (the fold's score, the run's OOF score), with the
seconds each stage took. A run that did not finish has one row and no scores; a finished run
whose later attempt did not finish keeps its scores, with that attempt in `latest`.

Writers hold a lock for the read-modify-write (several runs and tuning trials end at once), and
write through a temporary file, so a reader sees the table before or after, never a torn one.
A table that does not read (garbage, a copy cut off) is set aside under that lock as
<name>.broken-<time>, said in one line, and a new one starts: a run is never blocked by it.

submissions.parquet: each Kaggle submission of a competition (one row per submission ref): the
run it came from, its message, status and leaderboard scores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pipeline.core.files import fingerprint, locked, write_parquet
from pipeline.core.workdir import Workdir

RUN_COLUMNS = ["competition", "run", "status", "finished_at", "git_commit", "git_dirty", "torch", "timm",
               "settings_hash", "settings", "metric", "higher_is_better", "fold", "score", "oof", "seconds", "stage_seconds",
               "run_dir", "latest"]


def read_runs(workdir: Workdir, competition: str | None = None) -> pd.DataFrame:
    return _read(workdir.runs_table, RUN_COLUMNS, competition)


def _read(f: Path, columns: list[str], competition: str | None) -> pd.DataFrame:
    try:
        df = _table(f, columns)
    except pa.ArrowException:
        with locked(f.with_suffix(".lock")):  # (the writers' lock: none is mid-way through this table)
            df = _table_or_new(f, columns)
    return df if competition is None else df[df["competition"] == competition].reset_index(drop=True)


def _table(f: Path, columns: list[str]) -> pd.DataFrame:
    try:  # one open: pyarrow opening the path twice could meet two versions of a table replaced between
        with open(f, "rb") as fh:
            return pd.read_parquet(fh).reindex(columns=columns)
    except FileNotFoundError:
        return pd.DataFrame(columns=columns)


def _table_or_new(f: Path, columns: list[str]) -> pd.DataFrame:
    """The table, or (when it does not read) an empty one after setting the file aside. Only under
    the table's lock: read again there, as another process may have set it aside meanwhile."""
    try:
        return _table(f, columns)
    except pa.ArrowException as e:
        aside = f.with_name(f"{f.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(f, aside)
        print(f"{f}: unreadable ({type(e).__name__}: {str(e)[:80]}); set aside as {aside.name}, "
              f"a new one starts", file=sys.stderr)
        return pd.DataFrame(columns=columns)


def record_run(workdir: Workdir, settings: dict, *, run_dir: Path, metric, stage_seconds: dict,
               status: str = "finished", folds: list[dict] | None = None, oof: float | None = None) -> None:
    """Replace the rows of this (competition, run) with its latest attempt: one row per scored
    fold when it finished, else a single row with its status and no scores; except that an attempt
    that did not finish (yet) leaves a finished result in place, noted in its `latest`."""
    commit, dirty = git_state()
    base = {"competition": settings["competition"], "run": settings["run"], "status": status,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "git_commit": commit, "git_dirty": dirty,
            "torch": settings.get("versions", {}).get("torch"), "timm": settings.get("versions", {}).get("timm"),
            "settings_hash": fingerprint(settings["recipe"])[:8], "settings": json.dumps(settings, default=str),
            "metric": metric.name, "higher_is_better": metric.higher_is_better,
            "seconds": round(sum(stage_seconds.values()), 1), "stage_seconds": json.dumps(stage_seconds),
            "run_dir": str(run_dir)}
    rows = [{**base, "fold": f["fold"], "score": f[metric.name], "oof": oof} for f in folds or []] or [base]
    with locked(workdir.runs_table.with_suffix(".lock")):
        old = _table_or_new(workdir.runs_table, RUN_COLUMNS)
        this = (old["competition"] == base["competition"]) & (old["run"] == base["run"])
        finished = old[this & (old["status"] == "finished")]
        new = pd.DataFrame(rows, columns=RUN_COLUMNS)
        if status != "finished" and len(finished):
            new = finished.assign(latest=f"{status} ({base['finished_at']})")
        new = new.astype({"fold": "Int64", "score": float, "oof": float})
        keep = old[~this]
        write_parquet(workdir.runs_table, pd.concat([keep, new], ignore_index=True) if len(keep) else new)


def git_state() -> tuple[str | None, bool | None]:
    """The commit of the pipeline source that ran, and whether its tracked files had changes."""
    source = Path(__file__).resolve().parents[2]  # (pipeline/tracking/registry.py: the checkout)
    if not (source / "pyproject.toml").is_file():
        return None, None  # an installed wheel: its code has no commit here

    def git(*args):
        return subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None  # a source tree outside git
        return head.stdout.strip(), bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        return None, None


SUBMISSION_COLUMNS = ["competition", "ref", "run", "file_name", "description", "date", "status",
           "public_score", "private_score", "error"]


def read_submissions(workdir: Workdir, competition: str | None = None) -> pd.DataFrame:
    return _read(workdir.submissions_table, SUBMISSION_COLUMNS, competition)


def record_submissions(workdir: Workdir, rows: list[dict]) -> pd.DataFrame:
    """Merge `rows` in by (competition, ref): a value given replaces the stored one, a value
    missing (None) keeps it, so the run recorded at submit time survives later listings."""
    new = pd.DataFrame(rows, columns=SUBMISSION_COLUMNS)
    for col in ("public_score", "private_score"):  # Kaggle sends scores as text, "" before scoring
        new[col] = pd.to_numeric(new[col].replace("", None), errors="coerce")
    with locked(workdir.submissions_table.with_suffix(".lock")):
        old = _table_or_new(workdir.submissions_table, SUBMISSION_COLUMNS)
        merged = (pd.concat([old, new], ignore_index=True) if len(old) else new).astype({"ref": "int64"})
        merged = merged.groupby(["competition", "ref"], sort=False, as_index=False).last()  # last non-null
        write_parquet(workdir.submissions_table, merged[SUBMISSION_COLUMNS])
    return merged[SUBMISSION_COLUMNS]
