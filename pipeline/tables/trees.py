"""Gradient-boosted trees (LightGBM) beside the network, on exactly its rows and columns: a fold's
encoding (encoding.py) is the trees' input too, the category codes given to LightGBM as
categorical features and the normalised continuous columns as numbers (normalising is monotone,
so the trees split them as they would the raw values).

Each fold's trees stop on rows the fold's validation never sees: the last block of its own
training rows (under a time split the last test-period's length of days, as the folds are cut;
else a tenth of them at random), fitted on the rest. The rounds found are then refitted on all
of the fold's training rows, scaled by the rows' ratio: the fold's validation score is honest,
and the model a submission uses has seen the most recent rows. (Stopping on the validation rows
themselves, the usual quick baseline, flatters the score: 0.1065 against 0.1105 on Rossmann's
last six weeks, benchmarks/RESULTS.md.)"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import PipelineError
from pipeline.core.files import atomic_path, write_csv, write_json
from pipeline.recipe import Trees
from pipeline.tables.inputs import TableInputs
from pipeline.training.tasks import Classification, MultiLabel, Regression, Task

MODEL, SUMMARY, ROUNDS = "trees.txt", "trees.json", "rounds.csv"


def objective(task: Task, classes: list[str] | None) -> dict:
    """LightGBM's objective for the task: squared error on the (transformed) target, as the
    network's loss, or the classes' cross-entropy."""
    if isinstance(task, Regression):
        return {"objective": "regression", "metric": "l2"}
    if isinstance(task, MultiLabel) or not isinstance(task, Classification):
        raise PipelineError(f"arch 'lightgbm': trees predict a number or one class; a {task.name} task needs the "
                            f"network (--arch embeddings)")
    return {"objective": "multiclass", "num_class": len(classes), "metric": "multi_logloss"}


def params(trees: Trees, task: Task, classes: list[str] | None, seed: int) -> dict:
    return {**objective(task, classes), "learning_rate": trees.lr, "num_leaves": trees.leaves,
            "min_data_in_leaf": trees.min_leaf, "feature_fraction": trees.feature_fraction,
            "bagging_fraction": trees.bagging, "bagging_freq": 1 if trees.bagging < 1 else 0,
            "lambda_l2": trees.l2, "seed": seed, "num_threads": os.cpu_count() or 1, "verbose": -1}


@dataclass
class Stopping:
    fit: np.ndarray    # the training rows the stopping model learns from
    stop: np.ndarray   # the training rows it is stopped on
    words: str         # what `stop` is, for the log


def stopping_rows(train_idx: np.ndarray, days: np.ndarray | None, horizon: int | None, seed: int) -> Stopping:
    """A fold's training rows split for early stopping: under a time split (`days` given) the last
    `horizon` days of them, as the validation block follows them; else a tenth at random."""
    if days is not None:
        d = days[train_idx]
        late = d > d.max() - horizon
        words = f"the last {horizon} days of its training rows"
    else:
        late = np.zeros(len(train_idx), bool)
        late[np.random.default_rng(seed).permutation(len(train_idx))[:max(1, len(train_idx) // 10)]] = True
        words = "a tenth of its training rows at random"
    if late.all() or not late.any():
        raise PipelineError(f"{len(train_idx)} training rows: too few to keep some apart for the trees' early "
                            f"stopping; use fewer folds")
    return Stopping(train_idx[~late], train_idx[late], words)


def fit_fold(trees: Trees, inputs: TableInputs, y: np.ndarray, stopping: Stopping, train_idx: np.ndarray,
             task: Task, classes: list[str] | None, seed: int, out: Path, log: Callable = print) -> dict:
    """Stop on `stopping`, refit on `train_idx` for the rounds found (scaled by the rows' ratio);
    the booster to `out`/trees.txt, the rounds' losses to rounds.csv, a summary to trees.json.
    Returns the summary."""
    import lightgbm as lgb
    p, categorical = params(trees, task, classes, seed), list(range(len(inputs.encoding.categorical)))
    x = inputs.x

    def data(rows, reference=None):
        return lgb.Dataset(x[rows], y[rows], categorical_feature=categorical, reference=reference,
                           free_raw_data=True)
    fitted = data(stopping.fit)
    seen: dict = {}
    stopper = lgb.train(p, fitted, trees.rounds, valid_sets=[data(stopping.stop, fitted)], valid_names=["stop"],
                        callbacks=[lgb.early_stopping(trees.patience, verbose=False), lgb.record_evaluation(seen)])
    best = stopper.best_iteration or trees.rounds
    rounds = max(1, round(best * len(train_idx) / len(stopping.fit)))
    log(f"  stopped at round {best} on {stopping.words} ({len(stopping.stop):,} rows; fitted on "
        f"{len(stopping.fit):,}); refitted on all {len(train_idx):,} for {rounds} rounds")
    booster = lgb.train(p, data(train_idx), rounds)
    loss = next(iter(seen["stop"].values()))
    write_csv(out / ROUNDS, pd.DataFrame({"round": np.arange(1, len(loss) + 1), "stop_loss": loss}))
    gain = booster.feature_importance("gain")
    names = inputs.encoding.categorical + inputs.encoding.continuous
    summary = {"stopped_at": best, "rounds": rounds, "stop_rows": len(stopping.stop), "fit_rows": len(stopping.fit),
               "train_rows": len(train_idx), "stopped_on": stopping.words, "stop_loss": float(loss[best - 1]),
               "gain": {names[i]: round(float(gain[i] / max(gain.sum(), 1e-12)), 4) for i in np.argsort(-gain)}}
    with atomic_path(out / MODEL) as tmp:
        booster.save_model(str(tmp))
    write_json(out / SUMMARY, summary)
    return summary


def load(fold_dir: Path):
    import lightgbm as lgb
    return lgb.Booster(model_file=str(fold_dir / MODEL))


def unloadable(fold_dir: Path) -> str | None:
    """Why a fold's trees do not load (missing, cut off), or None."""
    try:
        load(fold_dir)
    except Exception as e:  # (LightGBM raises its own error for a cut-off file, OSError for none)
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def predict(booster, x: np.ndarray) -> np.ndarray:
    """The task's predictions, as the network's: the transformed target, or each class's probability."""
    return booster.predict(x, num_threads=os.cpu_count() or 1).astype(np.float32)
