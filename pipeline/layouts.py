"""Where a competition keeps its images and labels, for the common Kaggle layouts.

A layout turns a data folder into two tables: `train` (id, path, label) and `test` (id, path).
Test ids are the file names (or stems) in the test folder, in the order of sample_submission.csv.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import PipelineError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclass(frozen=True)
class ClassFolders:
    """train/<class>/<image>, test/<image>: one folder per class (e.g. plant-seedlings)."""
    train_dir: str = "train"
    test_dir: str = "test"
    test_id: str = "name"  # submission ids are file "name"s (a.png) or "stem"s (a)

    def markers(self) -> list[str]:
        return [self.train_dir]

    def train(self, root: Path, classes: list[str]) -> pd.DataFrame:
        folder = _existing_dir(root / self.train_dir, "training images")
        rows = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if sub.name not in classes:
                raise PipelineError(f"{sub}: class folder {sub.name!r} is not one of the competition's "
                                    f"classes; remove it or add it to `classes` in the definition")
            rows += [(p.stem, p, sub.name) for p in list_images(sub)]
        return _nonempty(pd.DataFrame(rows, columns=["id", "path", "label"]), folder)

    def test(self, root: Path) -> pd.DataFrame:
        return _test_table(root / self.test_dir, self.test_id)


@dataclass(frozen=True)
class LabelsCSV:
    """A CSV of id,label and train/<id><suffix>, test/<id><suffix> (e.g. digits, dog breeds)."""
    csv: str = "train.csv"
    id_column: str = "id"
    label_column: str = "label"
    train_dir: str = "train"
    test_dir: str = "test"
    suffix: str = ".png"
    test_id: str = "stem"

    def markers(self) -> list[str]:
        return [self.csv, self.train_dir]

    def train(self, root: Path, classes: list[str]) -> pd.DataFrame:
        csv = root / self.csv
        if not csv.is_file():
            raise PipelineError(f"{csv}: labels file missing; download the competition data again")
        df = pd.read_csv(csv, dtype={self.id_column: str, self.label_column: str})
        for col in (self.id_column, self.label_column):
            if col not in df.columns:
                raise PipelineError(f"{csv}: no column {col!r} (has {', '.join(df.columns)}); "
                                    f"fix the layout's column names in the definition")
        unknown = sorted(set(df[self.label_column]) - set(classes))
        if unknown:
            raise PipelineError(f"{csv}: labels {unknown[:5]} are not among the competition's classes; "
                                f"add them to `classes` in the definition")
        folder = _existing_dir(root / self.train_dir, "training images")
        paths = [folder / f"{i}{self.suffix}" for i in df[self.id_column]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise PipelineError(f"{missing[0]}: listed in {csv} but missing ({len(missing)} missing in all); "
                                f"download the competition data again")
        out = pd.DataFrame({"id": df[self.id_column], "path": paths, "label": df[self.label_column]})
        return _nonempty(out, csv)

    def test(self, root: Path) -> pd.DataFrame:
        return _test_table(root / self.test_dir, self.test_id)


def _existing_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise PipelineError(f"{folder}: folder of {what} missing; point --data at the competition's "
                            f"data folder, or download it again")
    return folder


def _nonempty(df: pd.DataFrame, where: Path) -> pd.DataFrame:
    if df.empty:
        raise PipelineError(f"{where}: no training images found; check the data folder is complete")
    return df.reset_index(drop=True)


def _test_table(folder: Path, test_id: str) -> pd.DataFrame:
    paths = list_images(_existing_dir(folder, "test images"))
    if not paths:
        raise PipelineError(f"{folder}: no test images found; check the data folder is complete")
    ids = [p.name if test_id == "name" else p.stem for p in paths]
    return pd.DataFrame({"id": ids, "path": paths})
