"""A fold's table as numbers, fitted on that fold's training rows only: each categorical column
a code per value seen in training (0: a value training never saw, or a missing one), each
continuous column with its missing values filled by the training median (and an is-missing
column beside it, itself categorical), then normalised by the training mean and spread. The
result is one float32 array [rows, categorical + continuous], codes first: a batch is one slice.

Nothing here looks at validation or test rows to fit; they are only encoded."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Encoding:
    categories: dict[str, pd.Index]  # column -> the values training saw, coded 1.. in this order
    medians: dict[str, float]        # continuous column -> its training median (fills its gaps)
    flagged: list[str]               # continuous columns missing somewhere in training: an is-missing column each
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, frame: pd.DataFrame, rows: np.ndarray, categorical: list[str], continuous: list[str]) -> "Encoding":
        fitted = frame.iloc[rows]
        categories = {c: pd.Index(pd.unique(fitted[c].dropna())).sort_values() for c in categorical}
        medians = {c: float(np.nanmedian(fitted[c].to_numpy(np.float64))) if fitted[c].notna().any() else 0.0
                   for c in continuous}
        flagged = [c for c in continuous if fitted[c].isna().any()]
        enc = cls(categories, medians, flagged, np.zeros(len(continuous)), np.ones(len(continuous)))
        x = enc._continuous(fitted)
        enc.mean, std = x.mean(0), x.std(0)
        enc.std = np.where(std > 0, std, 1.0)
        return enc

    @property
    def categorical(self) -> list[str]:
        return list(self.categories) + [f"{c}_missing" for c in self.flagged]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical column: one per value seen, and 0 for the unseen."""
        return [len(v) + 1 for v in self.categories.values()] + [3] * len(self.flagged)

    @property
    def continuous(self) -> list[str]:
        return list(self.medians)

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """(the rows as one float32 array, codes first; per categorical column, how many of the
        rows hold a value training never saw)."""
        codes, unseen = [], {}
        for c, seen in self.categories.items():
            code = seen.get_indexer(frame[c]) + 1
            new = (code == 0) & frame[c].notna().to_numpy()
            if new.any():
                unseen[c] = int(new.sum())
            codes.append(code)
        codes += [frame[c].isna().to_numpy().astype(np.int64) + 1 for c in self.flagged]
        x = (self._continuous(frame) - self.mean) / self.std
        return np.concatenate([np.stack(codes, 1).astype(np.float32), x.astype(np.float32)], 1), unseen

    def _continuous(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.stack([frame[c].to_numpy(np.float64) for c in self.medians], 1) if self.medians else \
            np.zeros((len(frame), 0))
        fill = np.array(list(self.medians.values()))
        return np.where(np.isnan(x), fill, x)
