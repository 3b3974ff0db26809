"""Where a table competition keeps its data and what its columns mean: `Table`, the layout a
definition names (competitions/rossmann-store-sales), and `read`, which turns the data folder
into one frame of training and test rows with the features added (features.py).

Every value a rule or feature needs is computed on the training and test rows together, in
date order, before the rows not to train on are dropped: a closed store's holiday still counts
for "days since the state holiday". What is fitted (categories, medians, means) is fitted per
fold on that fold's training rows only (encoding.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.tables import features as feats

TEST, TRAIN = "test", "train"


@dataclass(frozen=True)
class Table:
    target: str                          # the column to predict (train only)
    id: str                              # the test's id column: one submission row each
    categorical: tuple[str, ...]         # each an index into a learned embedding (model.py)
    continuous: tuple[str, ...]          # numbers: missing ones filled, with an is-missing column; normalised
    train: str = "train.csv"
    test: str = "test.csv"
    join: dict[str, str] = field(default_factory=dict)  # another CSV -> the column it joins on (store.csv -> Store)
    date: str | None = None              # parsed; its parts become columns, and folds may follow it (split="time")
    group: str | None = None             # elapsed-time features run per value of this column (each store)
    events: tuple[str, ...] = ()         # columns marking days (promo, holidays): days since the last and until the next
    skip: str | None = None              # training rows not to train on, a pandas query ("Open == 0 or Sales <= 0")
    known: dict[str, float] = field(default_factory=dict)  # test rows whose answer is known: query -> answer
    transform: str | None = "log1p"      # the target is learnt as log1p(target) (sales), predicted back; None: as is
    multilabel = False

    def markers(self) -> list[str]:
        return [self.train, self.test, *self.join]

    def columns(self) -> tuple[list[str], list[str]]:
        """(categorical, continuous): the definition's, then those the features add."""
        cat, cont = list(self.categorical), list(self.continuous)
        if self.date:
            cat += feats.date_columns(self.date)
        cont += feats.event_columns(self.events) if self.group or self.events else []
        return cat, cont


def read(layout: Table, root: Path, extra: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """Training and test rows as one frame (the column `_split` says which), joined, with the
    competition's own features (`extra`) and the layout's date and event features, in file order
    (training rows first); the training rows `skip` names are dropped."""
    train, test = _csv(root / layout.train), _csv(root / layout.test)
    where = root / layout.train
    if layout.target not in train:
        raise PipelineError(f"{where}: no target column {layout.target!r} (has {', '.join(train.columns)}); "
                            f"fix `target` in the definition")
    target = pd.to_numeric(train[layout.target], errors="coerce")
    bad = target.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise PipelineError(f"{where}: target {layout.target!r} holds {train[layout.target].iloc[i]!r} in row {i + 2} "
                            f"({int(bad.sum())} such rows), not a number; a regression target must be numeric")
    if layout.transform == "log1p" and (target < 0).any():
        raise PipelineError(f"{where}: target {layout.target!r} is negative in {int((target < 0).sum())} rows "
                            f"(e.g. row {int(np.argmax(target < 0)) + 2}); log1p needs targets >= 0: "
                            f"set transform=None in the Table, or fix the rows")
    train[layout.target] = target
    if layout.id not in test:
        raise PipelineError(f"{root / layout.test}: no id column {layout.id!r}; fix `id` in the definition")
    repeated = test[layout.id][test[layout.id].duplicated()]
    if len(repeated):
        raise PipelineError(f"{root / layout.test}: {len(repeated)} ids appear more than once (e.g. "
                            f"{repeated.iloc[0]!r}); each test row needs an id of its own: download the data again")
    test[layout.id] = test[layout.id].astype(str)  # (as read: an id column of numbers stays 1, not 1.0)
    frame = pd.concat([train.assign(_split=TRAIN, _row=np.arange(len(train))),
                       test.assign(_split=TEST, _row=np.arange(len(test)))], ignore_index=True)
    mixed = [c for c in frame if frame[c].dtype == object]  # "0" in one file, 0 in the other (StateHoliday)
    frame[mixed] = frame[mixed].astype("string")
    for name, key in layout.join.items():
        frame = _join(frame, _csv(root / name), key, root / name, (root / layout.train, root / layout.test))
    if layout.date:  # (parsed first: the competition's own features may count from it)
        frame[layout.date] = _dates(frame, layout.date, root / layout.train)
    if extra is not None:
        frame = extra(frame)
    if layout.date:
        frame = feats.add_date_parts(frame, layout.date)
        frame = feats.add_events(frame, layout.date, layout.group, layout.events)
    _check_columns(layout, frame, root)
    if layout.skip:
        drop = (frame["_split"] == TRAIN) & _query(frame, layout.skip, "skip")
        frame = frame[~drop.to_numpy()].reset_index(drop=True)
    return frame


def known_answers(layout: Table, test: pd.DataFrame) -> np.ndarray:
    """Per test row: the answer the definition's `known` rules give (NaN: none), the first rule
    that matches winning."""
    out = np.full(len(test), np.nan)
    for rule, answer in layout.known.items():
        hit = _query(test, rule, "known").to_numpy() & np.isnan(out)
        out[hit] = answer
    return out


def _csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise PipelineError(f"{path}: missing; download the competition data again")
    try:
        return pd.read_csv(path, low_memory=False)
    except ValueError as e:  # empty, a broken quote, not text
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PipelineError(f"{path}: not a readable CSV ({reason}); download the competition data again") from None


def _join(frame: pd.DataFrame, other: pd.DataFrame, key: str, where: Path, sides: tuple[Path, Path]) -> pd.DataFrame:
    for table, path in ((other, where), (frame, sides[0])):
        if key not in table:
            raise PipelineError(f"{path}: no column {key!r} to join {where.name} on; fix `join` in the definition")
    if other[key].duplicated().any():
        raise PipelineError(f"{where}: {key} {other[key][other[key].duplicated()].iloc[0]!r} appears more than once; "
                            f"a joined table has one row per key")
    missing = ~frame[key].isin(other[key])
    if missing.any():
        split = frame["_split"][missing].iloc[0]
        raise PipelineError(f"{sides[0] if split == TRAIN else sides[1]}: {key} {frame[key][missing].iloc[0]!r} "
                            f"({int(missing.sum())} rows) has no row in {where}; download the data again")
    return frame.merge(other, on=key, how="left", suffixes=("", f"_{where.stem}"))


def _dates(frame: pd.DataFrame, column: str, where: Path) -> pd.Series:
    if column not in frame:
        raise PipelineError(f"{where}: no date column {column!r}; fix `date` in the definition")
    parsed = pd.to_datetime(frame[column], errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise PipelineError(f"{where}: {column} {frame[column].iloc[i]!r} ({frame['_split'].iloc[i]} row) is not a "
                            f"date ({int(bad.sum())} such rows); fix the rows, or `date` in the definition")
    return parsed


def _check_columns(layout: Table, frame: pd.DataFrame, root: Path) -> None:
    cat, cont = layout.columns()
    absent = [c for c in cat + cont if c not in frame]
    if absent:
        raise PipelineError(f"{root / layout.train}: no column {absent[0]!r} (named in the definition's "
                            f"{'categorical' if absent[0] in cat else 'continuous'} columns) in the joined tables "
                            f"or the features; columns: {', '.join(c for c in frame.columns if c != '_split')}")
    for c in cont:
        if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            numbers = pd.to_numeric(frame[c], errors="coerce")
            text = frame[c][numbers.isna() & frame[c].notna()]
            if len(text):
                raise PipelineError(f"{root / layout.train}: continuous column {c!r} holds text ({text.iloc[0]!r}); "
                                    f"list it under `categorical`, or turn it into numbers in `features`")
            frame[c] = numbers


def _query(frame: pd.DataFrame, rule: str, name: str) -> pd.Series:
    try:
        return frame.eval(rule).astype(bool)
    except Exception as e:  # a column it names is absent, or it isn't an expression
        raise PipelineError(f"{name} rule {rule!r}: {type(e).__name__}: {e}; fix it in the definition") from None
