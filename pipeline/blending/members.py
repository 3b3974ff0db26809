"""The runs a blend combines, read from their folders and checked against each other: one
competition, every run finished, the same folds and the same folds scored, the same predictions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.core.files import read_json
from pipeline.core.workdir import Workdir


@dataclass
class Member:
    name: str
    folder: Path
    folds: pd.DataFrame   # folds.csv: id, label, fold
    oof: np.ndarray       # [rows, columns], in folds.csv's order of the scored rows
    test: np.ndarray      # [test rows, columns]: the mean over the run's folds, in `test_ids`' order
    scored: np.ndarray    # the scored rows' positions in folds.csv
    test_ids: np.ndarray
    columns: list[str]


def read(workdir: Workdir, competition: str, names: list[str]) -> list[Member]:
    """Each run named, checked (one line for each way runs cannot be blended)."""
    if len(names) < 2:
        raise PipelineError(f"blend needs two runs or more, got {len(names)} ({', '.join(names) or 'none'}); "
                            f"name the runs to combine, e.g. pipeline blend {competition} RUN1 RUN2")
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise PipelineError(f"run {twice!r} is named twice; name each run once (`--method select` may weigh one "
                            f"run more than once itself)")
    members = [_read(workdir, competition, n) for n in names]
    first = members[0]
    for m in members[1:]:
        _same_folds(first, m)
        if m.columns != first.columns:
            raise PipelineError(f"runs {first.name!r} and {m.name!r} predict different columns ({first.columns[:3]} "
                                f"against {m.columns[:3]}); blend runs of one task")
        if list(m.test_ids) != list(first.test_ids):
            raise PipelineError(f"runs {first.name!r} and {m.name!r} predict different test rows; run both on the "
                                f"same data")
    return members


def _read(workdir: Workdir, competition: str, name: str) -> Member:
    folder = workdir.run(competition, name)
    if not folder.is_dir():
        elsewhere = sorted(p.parent.name for p in workdir.runs(competition).parent.glob(f"*/{name}") if p.is_dir())
        found = sorted(p.name for p in workdir.runs(competition).glob("*") if p.is_dir())
        if elsewhere:
            raise PipelineError(f"run {name!r} is a run of {', '.join(elsewhere)}, not {competition}: blend runs of "
                                f"one competition")
        raise PipelineError(f"no run {name!r} of {competition} in {workdir.runs(competition)}/ (runs: "
                            f"{', '.join(found) or 'none'})")
    scores = read_json(folder / "scores.json")
    missing = [f for f in ("folds.csv", "oof_predictions.parquet", "test_predictions.parquet") if not (folder / f).is_file()]
    if scores is None or missing:
        raise PipelineError(f"run {name!r} did not finish ({folder} has no {'scores.json' if scores is None else missing[0]}); "
                            f"finish it with `pipeline run {competition} --run {name}`, or leave it out")
    folds = pd.read_csv(folder / "folds.csv", dtype={"id": str, "label": str})
    oof = pd.read_parquet(folder / "oof_predictions.parquet").astype({"id": str})
    columns = [c for c in oof.columns if c not in ("id", "label", "fold")]
    at = pd.Index(folds["id"]).get_indexer(oof["id"])
    order = np.argsort(at)
    test = pd.read_parquet(folder / "test_predictions.parquet").astype({"id": str})
    mean = test.groupby("id", sort=False)[columns].mean()  # each run's fold ensemble, as its submission has it
    return Member(name, folder, folds, oof[columns].to_numpy(np.float64)[order], mean.to_numpy(np.float64),
                  at[order], mean.index.to_numpy(), columns)


def _same_folds(a: Member, b: Member) -> None:
    if list(a.folds["id"]) != list(b.folds["id"]):
        raise PipelineError(f"runs {a.name!r} and {b.name!r} have different training rows ({a.folder / 'folds.csv'} "
                            f"and {b.folder / 'folds.csv'}); blend runs of the same data")
    moved = a.folds["fold"].to_numpy() != b.folds["fold"].to_numpy()
    if moved.any():
        i = int(np.flatnonzero(moved)[0])
        raise PipelineError(f"runs {a.name!r} and {b.name!r} have different folds: {int(moved.sum())} of {len(moved)} "
                            f"rows in another fold (id {a.folds['id'][i]}: fold {a.folds['fold'][i]} against "
                            f"{b.folds['fold'][i]}); blend runs split alike (the same --folds, --split and --seed)")
    if not np.array_equal(a.scored, b.scored):
        fa, fb = (sorted(set(m.folds["fold"].to_numpy()[m.scored])) for m in (a, b))
        raise PipelineError(f"runs {a.name!r} and {b.name!r} were scored on different folds ({fa} against {fb}); "
                            f"blend runs trained on the same folds (--train-folds)")
