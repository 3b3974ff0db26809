"""What a table competition's CSVs suggest for its definition (`pipeline new --layout table`),
read from the headers and the first rows: the target (the sample submission's answer column, or
the column train.csv has and test.csv lacks), the id (the sample's first column, or test.csv's
first that train.csv lacks), a date column, the other CSVs that join on one of train.csv's
columns (store.csv on Store), and each column's kind. Guesses for a person to check: the
definition written from them says so."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

MANY = 32      # a numeric column with more values than this is continuous (a distance, a price); fewer: a code,
               # a weekday, a year, categorical (a day of the month has 31)
ROWS = 100_000  # rows read of each file: enough to tell the kinds apart, quick on a large file


@dataclass
class Guess:
    target: str = "target"
    id: str = "id"
    date: str | None = None
    join: dict[str, str] = field(default_factory=dict)   # another CSV -> the column it joins on
    categorical: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    train_only: list[str] = field(default_factory=list)  # in train.csv, not test.csv, besides the target: no feature
    negative: bool = False                                # the target goes below 0 (log1p cannot learn it)
    read: bool = False                                    # the CSVs were there to read


def guess(folder: Path, train: str = "train.csv", test: str = "test.csv", sample: Path | None = None) -> Guess:
    """The guesses for the CSVs in `folder`; the placeholders of `Guess()` where they are absent."""
    if not (folder / train).is_file() or not (folder / test).is_file():
        return Guess()
    tr, te = _read(folder / train), _read(folder / test)
    header = list(_read(sample, 0).columns) if sample is not None else []
    target = next((c for c in header[1:2] if c in tr and c not in te), None) or \
        next((c for c in tr if c not in te), "target")
    id_ = next((c for c in header[:1] if c in te), None) or next((c for c in te if c not in tr), "id")
    shared = [c for c in tr if c in te and c != id_]
    both = pd.concat([tr[shared], te[shared]], ignore_index=True)
    date = next((c for c in shared if _dates(both[c])), None)
    g = Guess(target=target, id=id_, date=date, train_only=[c for c in tr if c not in te and c != target],
              negative=bool(target in tr and (pd.to_numeric(tr[target], errors="coerce") < 0).any()), read=True)
    columns = {c: both[c] for c in shared if c != date}
    for path in sorted(folder.glob("*.csv")):
        if path.name in (train, test) or (sample is not None and path.name == sample.name):
            continue
        other = _read(path)
        keys = [c for c in other if c in tr]
        if len(keys) == 1 and other[keys[0]].is_unique:
            g.join[path.name] = keys[0]
            columns.update((c, other[c]) for c in other if c not in columns)
    for c, values in columns.items():
        many = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) \
            and values.nunique() > MANY and c not in g.join.values()  # (a key is an entity: a store, a user)
        (g.continuous if many else g.categorical).append(c)
    return g


def _read(path: Path, rows: int = ROWS) -> pd.DataFrame:
    return pd.read_csv(path, nrows=rows, low_memory=False)


def _dates(values: pd.Series) -> bool:
    """Text that reads as dates throughout (2015-07-31, 07/31/2015), not codes ("0", "a")."""
    text = values.dropna()
    if text.empty or pd.api.types.is_numeric_dtype(text) or text.astype(str).str.len().min() < 8:
        return False
    return bool(pd.to_datetime(text.head(1000).astype(str), errors="coerce", format="mixed").notna().all())
