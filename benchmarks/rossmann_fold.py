"""Rossmann's validation fold as `pipeline run rossmann-store-sales` builds it, for the table
benchmarks (tables_lightgbm.py, tables_throughput.py, tables_blank.py): the competition's frame
(cached in the work folder's data/cache like a run's), three time-ordered folds of 42 days, fold 2
validated, trained on the rows before it, encoded as fitted on those rows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.competition import Competition, load
from pipeline.core.workdir import Workdir
from pipeline.kaggle.locate import find_data, not_found
from pipeline.tables.inputs import TableInputs
from pipeline.tables.source import TableSource
from pipeline.training.folds import time_folds, training_rows

SLUG, FOLD = "rossmann-store-sales", 2


@dataclass
class Fold:
    comp: Competition       # with its target range set, as a run's (the network's squashed output)
    source: TableSource
    folds: np.ndarray       # per training row: its time fold, -1 before every block
    train_idx: np.ndarray   # the rows fold 2 trains on: those before its 42 days
    valid_idx: np.ndarray   # fold 2: the last 42 days of train.csv
    inputs: TableInputs     # every training row encoded as fitted on train_idx: codes first, then continuous
    sales: np.ndarray       # the target in sales (the skip rule left only days with sales)


def rossmann_fold() -> Fold:
    comp, workdir = load(SLUG), Workdir.default()
    data = find_data(comp, None, workdir)  # $PIPELINE_DATA/rossmann-store-sales, or data/ here, as a run looks
    if data is None:
        raise SystemExit(not_found(comp, workdir))
    source = TableSource(comp.layout, data, workdir.cache(SLUG), comp.features, log=lambda *a: None)
    sales = source.targets().to_numpy(np.float64)
    comp = comp.with_range(sales)
    days, horizon = source.days()
    folds = time_folds(days, comp.recipes["cpu"].folds, horizon)
    train_idx = training_rows(folds, FOLD, "time")
    return Fold(comp, source, folds, train_idx, np.flatnonzero(folds == FOLD), source.inputs(train_idx), sales)
