"""A table competition's data for a run (stages/source.py's protocol): the frame `layout.read`
makes, cached in the work folder keyed by the files and the feature code (a second run starts
at once), each fold's encoding fitted on its training rows, the network built to fit it, and
predictions a batch of rows at a time."""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from pipeline.core.device import Device
from pipeline.core.files import files_fingerprint, fingerprint, write_parquet
from pipeline.core.progress import bar as progress_bar
from pipeline.recipe import Recipe
from pipeline.tables import encoding, features, layout as layouts
from pipeline.tables.encoding import Encoding
from pipeline.tables.inputs import TableInputs
from pipeline.tables.layout import TEST, TRAIN, Table
from pipeline.tables.model import EntityEmbeddings, widths
from pipeline.training.tasks import Task


def code_key(layout: Table, extra: Callable | None) -> str:
    """What the frame is made by: the layout's settings, the feature code, the definition's own."""
    code = [inspect.getsource(m) for m in (layouts, features, encoding)]
    return fingerprint(repr(layout), code, inspect.getsource(extra) if extra else None)


class TableSource:
    kind = "table"

    def __init__(self, layout: Table, root: Path, cache: Path, extra: Callable | None = None,
                 log: Callable = print):
        self.layout, self.log = layout, log
        files = [root / f for f in layout.markers()]
        self.key = fingerprint(files_fingerprint(files), code_key(layout, extra))
        frame = self._cached(cache / f"table-{self.key}.parquet", lambda: layouts.read(layout, root, extra))
        split = frame["_split"].to_numpy()
        self.train = frame[split == TRAIN].reset_index(drop=True)
        self.test = frame[split == TEST].reset_index(drop=True)
        self.categorical, self.continuous = layout.columns()
        self._folds: dict[str, TableInputs] = {}

    @staticmethod
    def _cached(path: Path, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        if path.is_file():
            return pd.read_parquet(path)
        frame = make()
        write_parquet(path, frame)
        return frame

    def ids(self) -> tuple[np.ndarray, np.ndarray]:
        """Training rows by their line in the training file; test rows by the id column."""
        return self.train["_row"].astype(str).to_numpy(), self.test[self.layout.id].astype(str).to_numpy()

    def targets(self) -> pd.Series:
        return self.train[self.layout.target]

    def days(self) -> tuple[np.ndarray, int]:
        """(each training row's day, the test period's length in days): what time-ordered folds cut."""
        day = lambda f: f[self.layout.date].to_numpy().astype("datetime64[D]").astype(np.int64)
        test = day(self.test)
        return day(self.train), int(test.max() - test.min() + 1)

    def known(self) -> np.ndarray:
        return layouts.known_answers(self.layout, self.test)

    def prepare(self, recipe: Recipe) -> None:
        """Nothing to decode: the frame is read."""

    def inputs(self, rows: np.ndarray, fold: str = "") -> TableInputs:
        """Every training row (and test row) encoded as fitted on `rows` (a fold's training rows)."""
        at = hashlib.sha1(np.ascontiguousarray(rows)).hexdigest()
        if at not in self._folds:
            self._folds.clear()  # one fold's arrays at a time: folds train and predict one after another
            enc = Encoding.fit(self.train, rows, self.categorical, self.continuous)
            # (a value of a row the encoding was fitted on is never unseen: the counts are the held-out rows')
            x, unseen = enc.transform(self.train)
            test, unseen_test = enc.transform(self.test)
            said = {c: (unseen.get(c, 0), unseen_test.get(c, 0)) for c in {*unseen, *unseen_test}}
            if said:
                self.log(f" {fold}values training never saw, coded as unseen: " + "; ".join(
                    f"{c} in {v} held-out and {t} test rows" for c, (v, t) in sorted(said.items())))
            self._folds[at] = TableInputs(x, test=test, encoding=enc)
        return self._folds[at]

    def model(self, recipe: Recipe, outputs: int, inputs: TableInputs) -> torch.nn.Module:
        enc = inputs.encoding
        return EntityEmbeddings(enc.cardinalities, len(enc.continuous), widths(recipe.arch), outputs)

    def load(self, path: Path, inputs: TableInputs, dev: Device) -> tuple[torch.nn.Module, dict]:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model = EntityEmbeddings(inputs.encoding.cardinalities, len(inputs.encoding.continuous),
                                 widths(ckpt["arch"]), ckpt["num_classes"])
        model.load_state_dict(ckpt["model"])
        dev.place(model)
        return model.eval(), ckpt

    @torch.inference_mode()
    def predict(self, model, ckpt: dict, inputs: TableInputs, rows: np.ndarray | None, recipe: Recipe, dev: Device,
                task: Task, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """The task's predictions for the training rows at `rows`, or the test rows (None): twice,
        as (over the views, the plain view) for images; a row has one view."""
        x = inputs.test if rows is None else inputs.x[rows]
        x = x[dev.group.share(len(x))]
        out = []
        step = max(recipe.batch_size * 8, 4096)
        for i in progress_bar(range(0, len(x), step), desc, unit="batches"):
            with dev.autocast():
                out.append(task.predictions(model(torch.from_numpy(x[i:i + step]).to(dev.device)).float()).cpu().numpy())
        p = dev.group.joined(np.concatenate(out) if out else np.zeros((0,), np.float32))
        return p, p
