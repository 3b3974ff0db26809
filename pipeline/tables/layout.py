"""Where a table competition keeps its data and what its columns mean: `Table`, the layout a
definition names (competitions/rossmann-store-sales), and `read`, which turns the data folder
into one frame of training and test rows with the features added (features.py).

Every value a rule or feature needs is computed on the training and test rows together, in
date order, before the rows not to train on are dropped: a closed store's holiday still counts
for "days since the state holiday". What is fitted (categories, medians, means) is fitted per
fold on that fold's training rows only (encoding.py)."""
from __future__ import annotations

import difflib
import traceback
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
            dates = feats.date_columns(self.date)
            cat, cont = cat + dates[0], cont + dates[1]
        if self.events:
            cat, cont = cat + feats.event_categories(self.events), cont + feats.event_columns(self.events)
        return cat, cont


def read(layout: Table, root: Path, extra: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """Training and test rows as one frame (the column `_split` says which), joined, with the
    competition's own features (`extra`) and the layout's date and event features, in file order
    (training rows first); the training rows `skip` names are dropped."""
    train_path, test_path = root / layout.train, root / layout.test
    train, test = _csv(train_path), _csv(test_path)
    train[layout.target] = _target(layout, train, train_path)
    _ids(layout, test, test_path)
    lacking = _lacking(layout, train, test, train_path, test_path)
    frame = pd.concat([train.assign(_split=TRAIN, _row=np.arange(len(train))),
                       test.assign(_split=TEST, _row=np.arange(len(test)))], ignore_index=True)
    mixed = [c for c in frame if frame[c].dtype == object]  # "0" in one file, 0 in the other (StateHoliday)
    frame[mixed] = frame[mixed].astype("string")
    files = {TRAIN: train_path, TEST: test_path}
    origin = {c: test_path for c in test} | {c: train_path for c in train}  # the file each column comes from
    for name, key in layout.join.items():
        other = _csv(root / name)
        origin |= {c: root / name for c in other if c not in frame}
        frame = _join(frame, other, key, root / name, files)
    if layout.date:  # (parsed first: the competition's own features may count from it)
        frame[layout.date] = _dates(frame, layout.date, files)
    if extra is not None:
        frame = _features(extra, frame, root)
    _check_named(layout, frame, root)
    if layout.date:
        frame = feats.add_date_parts(frame, layout.date)
        frame = feats.add_events(frame, layout.date, layout.group, layout.events)
    _check_continuous(layout, frame, origin, root)
    if layout.known:  # (checked now, not when the submission is written after training)
        known_answers(layout, frame[(frame["_split"] == TEST).to_numpy()], test_path, lacking[TEST])
    if layout.skip:
        drop = (frame["_split"] == TRAIN) & _query(frame, layout.skip, "skip", train_path, lacking[TRAIN])
        frame = frame[~drop.to_numpy()].reset_index(drop=True)
    return frame


def known_answers(layout: Table, test: pd.DataFrame, where: Path | None = None, lacking: list[str] = ()) -> np.ndarray:
    """Per test row: the answer the definition's `known` rules give (NaN: none), the first rule
    that matches winning."""
    out = np.full(len(test), np.nan)
    for rule, answer in layout.known.items():
        hit = _query(test, rule, "known", where or Path(layout.test), lacking).to_numpy() & np.isnan(out)
        out[hit] = answer
    return out


def submission_ids(layout: Table, root: Path) -> list[str]:
    """The test's ids as `read` gives them: a submission's rows."""
    test = _csv(root / layout.test)
    _ids(layout, test, root / layout.test)
    return list(test[layout.id])


def _named(layout: Table) -> dict[str, str]:
    """Each column the definition names, and the setting naming it first."""
    named = {}
    for what, columns in (("join", layout.join.values()), ("date", [layout.date]), ("group", [layout.group]),
                          ("events", layout.events), ("categorical", layout.categorical),
                          ("continuous", layout.continuous)):
        for c in columns:
            if c:
                named.setdefault(c, what)
    return named


def _lacking(layout: Table, train: pd.DataFrame, test: pd.DataFrame, train_path: Path,
             test_path: Path) -> dict[str, list[str]]:
    """Per file, the columns only the other has. Once the files are one frame such a column is NaN
    on this file's rows, so none the definition names may be one; a rule sees its own file's only."""
    lacking = {TRAIN: [c for c in test if c not in train], TEST: [c for c in train if c not in test]}
    for path, split, other in ((train_path, TRAIN, test_path), (test_path, TEST, train_path)):
        named = [(c, what) for c, what in _named(layout).items() if c in lacking[split]]
        if named:
            raise PipelineError(f"{path}: no column {named[0][0]!r}, which {other.name} has and the definition names "
                                f"(its `{named[0][1]}`); download the data again, or fix the definition")
    return lacking


def _lines(bad: np.ndarray) -> str:
    n = int(np.sum(bad))
    return f"{n} line{'s' if n != 1 else ''}"


def _shown(value) -> str:
    """A value as a message quotes it: 13, 'a' (not numpy's np.int64(13))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _target(layout: Table, train: pd.DataFrame, where: Path) -> pd.Series:
    """The target as numbers: every row holding one, none below 0 when learnt as its log1p."""
    if layout.target not in train:
        raise PipelineError(f"{where}: no target column {layout.target!r} (has {', '.join(train.columns)}); "
                            f"fix `target` in the definition")
    raw = train[layout.target]
    target = pd.to_numeric(raw, errors="coerce")
    bad = target.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        what = "is missing" if pd.isna(raw.iloc[i]) else f"holds {_shown(raw.iloc[i])}, not a number,"
        raise PipelineError(f"{where}: target {layout.target!r} {what} on line {i + 2} ({_lines(bad)} in all); "
                            f"a regression target is a number on every line: fix those lines, or `target` "
                            f"in the definition")
    negative = (target < 0).to_numpy()
    if layout.transform == "log1p" and negative.any():
        i = int(np.argmax(negative))
        raise PipelineError(f"{where}: target {layout.target!r} is negative on {_lines(negative)} (e.g. "
                            f"line {i + 2}: {_shown(raw.iloc[i])}); log1p needs targets >= 0: set transform=None "
                            f"in the Table, or fix the lines")
    return target


def _ids(layout: Table, test: pd.DataFrame, where: Path) -> None:
    """The test's id column, one id a row, read as text (an id of numbers stays 1, not 1.0)."""
    if layout.id not in test:
        raise PipelineError(f"{where}: no id column {layout.id!r} (has {', '.join(test.columns)}); "
                            f"fix `id` in the definition")
    repeated = test[layout.id][test[layout.id].duplicated()]
    if len(repeated):
        raise PipelineError(f"{where}: {len(repeated)} ids appear more than once (e.g. {_shown(repeated.iloc[0])} "
                            f"on line {repeated.index[0] + 2}); each test row needs an id of its own: download the "
                            f"data again")
    test[layout.id] = test[layout.id].astype(str)


def _csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise PipelineError(f"{path}: missing; download the competition data again")
    try:
        return pd.read_csv(path, low_memory=False)
    except ValueError as e:  # empty, a broken quote, not text
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PipelineError(f"{path}: not a readable CSV ({reason}); download the competition data again") from None


def _join(frame: pd.DataFrame, other: pd.DataFrame, key: str, where: Path, files: dict[str, Path]) -> pd.DataFrame:
    for table, path in ((other, where), (frame, files[TRAIN])):
        if key not in table:
            raise PipelineError(f"{path}: no column {key!r} to join {where.name} on; fix `join` in the definition")
    repeated = other[key][other[key].duplicated()]
    if len(repeated):
        raise PipelineError(f"{where}: {key} {_shown(repeated.iloc[0])} appears more than once (line "
                            f"{repeated.index[0] + 2}); a joined table has one row per key: download the data again")
    missing = ~frame[key].isin(other[key]).to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        split, value = frame["_split"].iloc[i], frame[key].iloc[i]
        same = missing & (frame["_split"] == split).to_numpy() & (frame[key] == value).to_numpy()
        raise PipelineError(f"{files[split]}: {key} {_shown(value)} (line {frame['_row'].iloc[i] + 2}, "
                            f"{_lines(same)} in all) has no row in {where}: download the data again")
    return frame.merge(other, on=key, how="left", suffixes=("", f"_{where.stem}"))


def _dates(frame: pd.DataFrame, column: str, files: dict[str, Path]) -> pd.Series:
    if column not in frame:
        raise PipelineError(f"{files[TRAIN]}: no date column {column!r}; fix `date` in the definition")
    parsed = pd.to_datetime(frame[column], errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise PipelineError(f"{files[frame['_split'].iloc[i]]}: {column} {_shown(frame[column].iloc[i])} on line "
                            f"{frame['_row'].iloc[i] + 2} is not a date ({_lines(bad)} in all); fix those "
                            f"lines, or `date` in the definition")
    return parsed


def _features(extra: Callable[[pd.DataFrame], pd.DataFrame], frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    """The definition's own features; when they fail, one line at the definition's line."""
    try:
        return extra(frame)
    except PipelineError:
        raise
    except Exception as e:
        code = extra.__code__.co_filename
        line = next((f.lineno for f in reversed(traceback.extract_tb(e.__traceback__)) if f.filename == code), "?")
        fix = ("a column it reads is not in the data: download the data again, or fix `features`"
               if isinstance(e, KeyError) else "fix `features`")
        raise PipelineError(f"{code}:{line}: `features` failed on {root}: {type(e).__name__}: {e}; {fix}") from None


def _check_named(layout: Table, frame: pd.DataFrame, root: Path) -> None:
    """Every column the definition's columns, events and group name is in the files or the features."""
    for c, what in _named(layout).items():
        if what not in ("join", "date") and c not in frame:
            columns = [c for c in frame if not c.startswith("_")]
            close = difflib.get_close_matches(c, columns, 1)
            raise PipelineError(f"{root}: no column {c!r} (the definition's `{what}` names it) in "
                                f"{', '.join(layout.markers())} or the definition's features; fix its name"
                                + (f" (did you mean {close[0]!r}?)" if close else ""))


def _check_continuous(layout: Table, frame: pd.DataFrame, origin: dict[str, Path], root: Path) -> None:
    """Continuous columns as numbers: text in one is an error naming the file it came from."""
    for c in layout.columns()[1]:
        if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]):
            numbers = pd.to_numeric(frame[c], errors="coerce")
            text = frame[c][numbers.isna() & frame[c].notna()]
            if len(text):
                where = origin.get(c, f"{root} (the definition's features)")
                raise PipelineError(f"{where}: continuous column {c!r} holds text ({_shown(text.iloc[0])}); list it "
                                    f"under `categorical`, or turn it into numbers in `features`")
            frame[c] = numbers


def _query(frame: pd.DataFrame, rule: str, name: str, where: Path, lacking: list[str] = ()) -> pd.Series:
    """Where the definition's `name` rule holds, over the columns of `where` (and those joined to
    it): a column only the other file has is missing here, not NaN."""
    try:
        frame.iloc[:0].drop(columns=list(lacking)).eval(rule)
        return frame.eval(rule).astype(bool)
    except pd.errors.UndefinedVariableError as e:
        raise PipelineError(f"{where}: the definition's {name} rule {rule!r} names a column it lacks ({e}); "
                            f"fix `{name}` in the definition") from None
    except Exception as e:  # not an expression
        raise PipelineError(f"{where}: {name} rule {rule!r}: {type(e).__name__}: {e}; fix `{name}` in the "
                            f"definition") from None
