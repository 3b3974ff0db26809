"""Where a competition keeps its images and labels, for the common Kaggle layouts:

    ClassFolders  train/<class>/<image>                          (plant-seedlings)
    LabelsCSV     a CSV of id,label and train/<id>.jpg            (dog breeds)
    TagsCSV       a CSV of id,"tag tag ...": multi-label          (planet)
    FileNames     the label in the file name: train/cat.123.jpg   (dogs vs cats)

A layout turns a data folder into two tables: `train` (id, path, label) and `test` (id, path),
each id once; a multi-label layout's labels are space-separated tags. Test ids are the file names
(or stems) in the test folder(s), matched against the sample submission. With `classes` None (a
competition that leaves them unlisted), labels are not checked against a list.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import PipelineError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def skipped_files(folders: list[Path]) -> list[str]:
    """A line naming the files in `folders` that are not images, and one naming the links that lead
    to no file (dangling, or a loop): both are skipped, each line there only if there are any."""
    entries = [p for f in folders if f.is_dir() for p in f.iterdir()]
    others = sorted(p for p in entries if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    broken = sorted(p for p in entries if p.is_symlink() and not p.exists())  # (exists() is False for a loop too)
    lines = []
    if others:
        kinds = ", ".join(sorted({p.suffix.lower() or "no suffix" for p in others}))
        lines.append(f"skipped {len(others)} files that are not images ({kinds}): {_first_few(others)}; "
                     f"only {', '.join(sorted(IMAGE_SUFFIXES))} files are read")
    if broken:
        lines.append(f"skipped {len(broken)} links that lead to no file (dangling, or a loop): {_first_few(broken)}")
    return lines


def _first_few(paths: list[Path]) -> str:
    return f"{', '.join(map(str, paths[:3]))}{', ...' if len(paths) > 3 else ''}"


@dataclass(frozen=True)
class _ImageFolders:
    """What the layouts without a labels file share: a training folder and test folder(s)."""
    train_dir: str = "train"
    test_dir: str | tuple[str, ...] = "test"  # several folders: their images together
    test_id: str = "name"  # submission ids are file "name"s (a.png) or "stem"s (a)
    multilabel = False

    def markers(self) -> list[str]:
        return [self.train_dir]

    def test(self, root: Path) -> pd.DataFrame:
        return _test_table(root, self.test_dir, self.test_id)

    def notices(self, root: Path) -> list[str]:
        """What the tables leave out without an error, a line each, for the start of a run."""
        return skipped_files([root / self.train_dir, *_test_dirs(root, self.test_dir)])


@dataclass(frozen=True)
class ClassFolders(_ImageFolders):
    """train/<class>/<image>, test/<image>: one folder per class (e.g. plant-seedlings)."""

    def train(self, root: Path, classes: list[str] | None) -> pd.DataFrame:
        folder = _existing_dir(root / self.train_dir, "training images")
        rows = []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if classes is not None and sub.name not in classes:
                raise PipelineError(f"{sub}: class folder {sub.name!r} is not one of the competition's "
                                    f"classes; remove it or add it to `classes` in the definition")
            rows += [(p.stem, p, sub.name) for p in list_images(sub)]
        df = pd.DataFrame(rows, columns=["id", "path", "label"])
        if df["id"].duplicated().any():  # cat/1.jpg, dog/1.jpg: folders that number their own images
            df["id"] = df["label"] + "/" + df["id"]
        if df["id"].duplicated().any():  # yes/Y92.jpg, yes/Y92.png: two images (training ids reach no submission)
            df["id"] = df["label"] + "/" + df["path"].map(lambda p: p.name)
        return _train_table(df, folder, "give each image a name of its own")

    def notices(self, root: Path) -> list[str]:
        folder = root / self.train_dir
        subs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        empty = [p for p in subs if not list_images(p)]
        lines = [f"skipped {len(empty)} class folders with no images: {', '.join(map(str, empty))}"] if empty else []
        loose = list_images(folder) if folder.is_dir() else []  # train/x.png: in no class
        if loose:
            lines.append(f"skipped {len(loose)} images outside the class folders: {_first_few(loose)}")
        names = pd.Series([p.stem for s in subs for p in {q.stem: q for q in list_images(s)}.values()], dtype=str)
        repeated = names[names.duplicated()].unique()  # (across folders: Y92.jpg beside Y92.png is two images)
        if len(repeated):  # numbered per class, or one image copied into two classes: the user knows which
            lines.append(f"{len(repeated)} image names appear in more than one class folder (e.g. "
                         f"{', '.join(repeated[:3])}): training ids are class/name; an image copied into two "
                         f"classes would sit on both sides of a fold")
        return lines + skipped_files([folder, *subs, *_test_dirs(root, self.test_dir)])


@dataclass(frozen=True)
class LabelsCSV:
    """A CSV of id,label and train/<id><suffix>, test/<id><suffix> (e.g. digits, dog breeds)."""
    csv: str = "train.csv"
    id_column: str = "id"
    label_column: str = "label"
    train_dir: str = "train"
    test_dir: str | tuple[str, ...] = "test"
    suffix: str = ".png"
    test_id: str = "stem"
    multilabel = False

    def markers(self) -> list[str]:
        return [self.csv, self.train_dir]

    def train(self, root: Path, classes: list[str] | None) -> pd.DataFrame:
        csv, df = root / self.csv, self._labels(root)
        _check_filled(df, self.id_column, self.label_column, csv, classes, self.multilabel)
        _check_labels(df[self.label_column], classes, self.multilabel, csv)
        folder = _existing_dir(root / self.train_dir, "training images")
        paths = [folder / f"{i}{self.suffix}" for i in df[self.id_column]]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            first = str(df[self.id_column].iloc[paths.index(missing[0])])
            if self.suffix and Path(first).suffix.lower() in IMAGE_SUFFIXES:  # x.jpg + ".jpg": looked for x.jpg.jpg
                raise PipelineError(f"{missing[0]}: listed in {csv} but missing ({len(missing)} missing in all): "
                                    f"its id {first!r} ends in its suffix already; set suffix=\"\" in the "
                                    f"definition's layout (and test_id=\"name\" if the submission's ids do too)")
            raise PipelineError(f"{missing[0]}: listed in {csv} but missing ({len(missing)} missing in all); "
                                f"download the competition data again")
        out = pd.DataFrame({"id": df[self.id_column], "path": paths, "label": df[self.label_column]})
        return _train_table(out, csv, "list each image once (drop the repeated rows)")

    def _labels(self, root: Path) -> pd.DataFrame:
        """The labels CSV, refused in one line if missing, unreadable or without the layout's columns."""
        csv = root / self.csv
        if not csv.is_file():
            raise PipelineError(f"{csv}: labels file missing; download the competition data again")
        try:
            df = pd.read_csv(csv, dtype={self.id_column: str, self.label_column: str}, keep_default_na=False)
        except ValueError as e:  # an empty file, a broken quote, bytes that aren't text: pandas' ValueErrors
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise PipelineError(f"{csv}: not a readable CSV ({reason}); download the competition data again") from None
        for col in (self.id_column, self.label_column):
            if col not in df.columns:
                raise PipelineError(f"{csv}: no column {col!r} (has {', '.join(df.columns)}); "
                                    f"fix the layout's column names in the definition")
        return df

    def test(self, root: Path) -> pd.DataFrame:
        return _test_table(root, self.test_dir, self.test_id)

    def notices(self, root: Path) -> list[str]:
        """What the tables leave out without an error, a line each, for the start of a run."""
        return skipped_files([root / self.train_dir, *_test_dirs(root, self.test_dir)]) + self._unlisted(root)

    def _unlisted(self, root: Path) -> list[str]:
        """A line naming the images in the training folder that the labels CSV has no row for
        (the table holds only the CSV's rows, so they are skipped), if any."""
        folder = root / self.train_dir
        try:
            ids = self._labels(root)[self.id_column]
        except PipelineError:  # said by train(), as the run's error
            return []
        listed = {f"{i}{self.suffix}" for i in ids}
        unlisted = [p for p in list_images(folder) if p.name not in listed] if folder.is_dir() else []
        if not unlisted:
            return []
        return [f"skipped {len(unlisted)} training images with no row in {root / self.csv}: {_first_few(unlisted)}"]


@dataclass(frozen=True)
class TagsCSV(LabelsCSV):
    """LabelsCSV for multi-label data: each image's labels are space-separated tags (e.g. planet's
    train_v2.csv: image_name,tags). Trained with one sigmoid per tag (labels.py)."""
    label_column: str = "tags"
    multilabel = True


@dataclass(frozen=True)
class FileNames(_ImageFolders):
    """The label in each training file's name, e.g. train/cat.123.jpg and train/dog.7.jpg (dogs vs
    cats): `pattern` is a regular expression whose group "label" matches it (default: the name
    up to its first dot). Test images: test/<id><suffix>."""
    test_id: str = "stem"
    pattern: str = r"(?P<label>[^.]+)\."

    def train(self, root: Path, classes: list[str] | None) -> pd.DataFrame:
        folder = _existing_dir(root / self.train_dir, "training images")
        rows = []
        for p in list_images(folder):
            m = re.match(self.pattern, p.name)
            if not m:
                raise PipelineError(f"{p}: its name doesn't match the layout's pattern {self.pattern!r}; "
                                    f"remove the file or fix `pattern` in the definition")
            rows.append((p.stem, p, m.group("label")))
        df = pd.DataFrame(rows, columns=["id", "path", "label"])
        _check_labels(df["label"], classes, False, folder)
        return _train_table(df, folder, "give each image a name of its own (its id is the name less its suffix)")

    def notices(self, root: Path) -> list[str]:
        return super().notices(root) + self._singletons(root)

    def _singletons(self, root: Path) -> list[str]:
        """A line when nearly every one of many classes has a single image: the pattern likely takes
        more of each name than its label (cloudy1.jpg read as class "cloudy1"), and no fold could
        hold such a class out; the folds would refuse the run without saying why."""
        folder = root / self.train_dir
        found: dict[str, list[Path]] = {}
        for p in list_images(folder) if folder.is_dir() else []:
            m = re.match(self.pattern, p.name)
            if m:  # (a name that doesn't match is train()'s error)
                found.setdefault(m.group("label"), []).append(p)
        ones = [(label, paths[0].name) for label, paths in found.items() if len(paths) == 1]
        if len(found) < 20 or len(ones) <= len(found) / 2:
            return []
        label, name = ones[0]
        letters = re.match(LETTERS, name)
        example = f": {name} -> {letters['label']!r}" if letters else ""
        return [f"{len(ones)} of {len(found)} classes have a single image ({name} is class {label!r}): the layout's "
                f"pattern r\"{self.pattern}\" likely takes more of each name than its label; set `pattern` in the "
                f"definition, e.g. pattern=r\"{LETTERS}\" (the name up to a digit or dot{example})"]


# FileNames' pattern for names that number their images without a dot: cloudy1.jpg -> "cloudy"
LETTERS = r"(?P<label>[^\d.]+)"


# How a gap reads in a CSV written from a table with gaps (pandas, R, spreadsheets): no label, not
# a class, unless the definition lists a class by that name. "NA" and "None" are left out: they
# read as classes ("no finding") as often as gaps.
MISSING_LABELS = {"", "nan", "NaN", "NAN", "-nan", "-NaN", "<NA>", "N/A", "n/a", "#N/A", "NULL", "null"}


def _check_filled(df: pd.DataFrame, id_column: str, label_column: str, csv: Path, classes: list[str] | None,
                  multilabel: bool) -> None:
    """Every row of the labels file labelled: a blank or NaN label is a gap to fill, not a class."""
    gaps = df[label_column].str.strip().isin(MISSING_LABELS - set(classes or ()))
    if not gaps.any():
        return
    ids = df.loc[gaps, id_column].tolist()
    rows = "1 row has" if len(ids) == 1 else f"{len(ids)} rows have"
    raise PipelineError(f"{csv}: {rows} no {'tags' if multilabel else 'label'} (ids {', '.join(ids[:5])}"
                        f"{', ...' if len(ids) > 5 else ''}): fill them in or drop the rows")


def _check_labels(labels: pd.Series, classes: list[str] | None, multilabel: bool, where: Path) -> None:
    if classes is None:
        return
    found = {t for label in labels for t in label.split()} if multilabel else set(labels)
    unknown = sorted(found - set(classes))
    if unknown:
        raise PipelineError(f"{where}: labels {unknown[:5]} are not among the competition's classes; "
                            f"add them to `classes` in the definition")


def _existing_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise PipelineError(f"{folder}: folder of {what} missing; point --data at the competition's "
                            f"data folder, or download it again")
    return folder


def _check_unique(ids: pd.Series, where: Path | str, fix: str) -> None:
    """Each image once: a repeated training image lands on both sides of a fold split (an inflated
    CV score), and the tables keyed by id further on (predictions, submission) break on repeats."""
    repeated = ids[ids.duplicated()].unique()
    if len(repeated):
        raise PipelineError(f"{where}: {len(repeated)} ids appear more than once "
                            f"(e.g. {', '.join(map(str, repeated[:3]))}); {fix}")


def _train_table(df: pd.DataFrame, where: Path, fix: str) -> pd.DataFrame:
    """The training table, refused if empty or if an id repeats (`fix` says how to mend that)."""
    if df.empty:
        raise PipelineError(f"{where}: no training images found; check the data folder is complete")
    _check_unique(df["id"], where, fix)
    return df.reset_index(drop=True)


def _test_dirs(root: Path, test_dirs: str | tuple[str, ...]) -> list[Path]:
    return [root / d for d in ((test_dirs,) if isinstance(test_dirs, str) else test_dirs)]


def _test_table(root: Path, test_dirs: str | tuple[str, ...], test_id: str) -> pd.DataFrame:
    folders = _test_dirs(root, test_dirs)
    paths = [p for f in folders for p in list_images(_existing_dir(f, "test images"))]
    if not paths:
        raise PipelineError(f"{', '.join(map(str, folders))}: no test images found; check the data folder is complete")
    ids = pd.Series([p.name if test_id == "name" else p.stem for p in paths], dtype=str)
    # e.g. a.png beside a.jpg, or one name in two test folders: the submission has one row per id
    _check_unique(ids, ", ".join(map(str, folders)), "keep one test image per id")
    return pd.DataFrame({"id": ids, "path": paths})
