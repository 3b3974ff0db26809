"""A LightGBM baseline for the entity-embeddings network on Rossmann: the same rows, features and
validation weeks as `pipeline run rossmann-store-sales` (fold 2, the last 42 days of train.csv,
trained on every row before them: rossmann_fold.py).

    PIPELINE_DATA=../shared/datasets python benchmarks/tables_lightgbm.py [--ordered-dates] [--refit]
        [--drop COLUMN ...]

The features are the network's own array, as the fold's encoding makes it: each categorical
column's code (0 for a value training never saw) given to LightGBM as a categorical feature, and
each continuous column as the network gets it, its gaps filled with the training median (an
is-missing column beside it, itself categorical) and normalised; normalising is monotone, so
trees split it as they would the raw numbers. With --ordered-dates, the date's parts (year,
month, week, day, day of week and of year, month start and end) are given as ordered numbers
instead: the encoding sorts each column's values before coding them, so a code's order is its
value's (a tree then splits "before week 20", not "weeks 3, 17 and 21"). --drop leaves columns
out (the trees' counterpart of tables_blank.py). Target log1p(Sales), L2 loss; RMSPE is scored in
sales (expm1 of the predictions) on the rows with sales, by pipeline.metrics.rmspe.

Two ways to stop, each printed as a row:
- "stopped on fold 2": early stopping watches the validation fold itself, then scores it: the
  rounds are chosen on the rows scored, so the number flatters (the usual quick baseline).
- "stopped on fold 1": trained on the rows before fold 1 (the training rows less their last 42
  days), early stopping watches fold 1, and that model scores fold 2, which it never saw: the
  honest number. With --refit, a third row: the whole of fold 2's training rows refitted for the
  rounds found on fold 1, scaled by the rows' ratio (the model a submission would use).

Seconds: wall and CPU (all threads) of building the Dataset and boosting; CPU near wall rather
than twice it says the two threads waited for each other (another process had a core). Peak
memory: the process's resident set, sampled every 50 ms during each fit (the frame and the fold's
arrays, about 1.1 GiB, are already held). Record results in RESULTS.md."""
from __future__ import annotations

import argparse
import resource
import threading
import time

import lightgbm as lgb
import numpy as np

from pipeline.metrics import rmspe
from pipeline.tables.features import date_columns
from pipeline.training.folds import training_rows
from rossmann_fold import FOLD, rossmann_fold

# a common Kaggle starting point for a few hundred thousand rows, sized for a 2-core CPU
PARAMS = dict(objective="regression", learning_rate=0.1, num_leaves=127, min_data_in_leaf=100,
              feature_fraction=0.8, bagging_fraction=0.8, bagging_freq=1, max_bin=255,
              seed=0, verbose=-1)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class Peak(threading.Thread):
    """The largest resident set seen while it runs (ru_maxrss would keep the process's all-time peak)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.mb, self.done = rss_mb(), threading.Event()

    def run(self):
        while not self.done.wait(0.05):
            self.mb = max(self.mb, rss_mb())

    def __exit__(self, *exc):
        self.done.set()
        self.join()

    def __enter__(self):
        self.start()
        return self


def fit(x, y, fit_rows, stop_rows, categorical, params, rounds, patience) -> tuple[lgb.Booster, str, float]:
    """(the booster at its best round, "wall s / CPU s", peak MB): trained on `fit_rows`, stopped
    early on `stop_rows` (or run for `rounds` when None)."""
    with Peak() as peak:
        t0, c0 = time.perf_counter(), time.process_time()
        train = lgb.Dataset(x[fit_rows], y[fit_rows], categorical_feature=categorical, free_raw_data=True)
        valid = [lgb.Dataset(x[stop_rows], y[stop_rows], reference=train)] if stop_rows is not None else []
        stop = [lgb.early_stopping(patience, verbose=False)] if valid else []
        booster = lgb.train(params, train, rounds, valid_sets=valid, callbacks=stop)
        seconds = f"{time.perf_counter() - t0:.0f} / {time.process_time() - c0:.0f}"
    return booster, seconds, peak.mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3000, help="most boosting rounds")
    ap.add_argument("--patience", type=int, default=50, help="rounds without a better validation L2 before stopping")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ordered-dates", action="store_true", help="the date's parts as ordered numbers, not categories")
    ap.add_argument("--drop", nargs="*", default=[], help="columns to leave out, e.g. DateDayofyear DateWeek")
    ap.add_argument("--refit", action="store_true", help="also refit all training rows for the rounds fold 1 chose")
    args = ap.parse_args()
    params = {**PARAMS, "num_threads": args.threads}

    t0 = time.perf_counter()
    fold = rossmann_fold()
    y, enc = np.log1p(fold.sales), fold.inputs.encoding
    names = enc.categorical + enc.continuous  # codes first (encoding.py)
    unknown = set(args.drop) - set(names)
    if unknown:
        raise SystemExit(f"--drop {', '.join(sorted(unknown))}: no such column; the columns: {', '.join(names)}")
    kept = [i for i, c in enumerate(names) if c not in args.drop]
    x = fold.inputs.x[:, kept] if args.drop else fold.inputs.x  # (a copy only when needed: 100 MB)
    ordered = date_columns(fold.comp.layout.date)[0] if args.ordered_dates else []  # (the categorical parts)
    categorical = [j for j, i in enumerate(kept) if i < len(enc.categorical) and names[i] not in ordered]
    inner = training_rows(fold.folds, FOLD - 1, "time")  # the rows before fold 1
    fold1 = np.flatnonzero(fold.folds == FOLD - 1)        # the training rows' last 42 days
    valid = fold.valid_idx
    dropped = f", {', '.join(args.drop)} left out" if args.drop else ""
    print(f"{len(fold.train_idx)} training rows, {len(valid)} validation rows, {x.shape[1]} columns "
          f"({len(categorical)} of them categorical{dropped}); data {time.perf_counter() - t0:.0f} s, "
          f"resident {rss_mb():.0f} MB; {args.threads} threads, {params}\n")

    def score(booster) -> float:
        return rmspe(fold.sales[valid], np.expm1(booster.predict(x[valid], num_threads=args.threads)))

    print("| stopped on | trained on rows | rounds (best) | fold 2 RMSPE | fit s, wall / CPU | peak resident MB |")
    print("|---|---|---|---|---|---|")
    runs = [("fold 2 (peeking)", fold.train_idx, valid), ("fold 1 (honest)", inner, fold1)]
    found, gains = None, []
    for name, fit_rows, stop_rows in runs:
        booster, seconds, peak = fit(x, y, fit_rows, stop_rows, categorical, params, args.rounds, args.patience)
        print(f"| {name} | {len(fit_rows):,} | {booster.best_iteration} | {score(booster):.4f} | {seconds} | "
              f"{peak:,.0f} |", flush=True)
        found = booster.best_iteration
        gains.append(booster.feature_importance("gain", iteration=found))
    if args.refit:
        rounds = round(found * len(fold.train_idx) / len(inner))
        booster, seconds, peak = fit(x, y, fold.train_idx, None, categorical, params, rounds, args.patience)
        print(f"| fold 1's rounds x {len(fold.train_idx) / len(inner):.2f}, refitted | {len(fold.train_idx):,} | "
              f"{rounds} (fixed) | {score(booster):.4f} | {seconds} | {peak:,.0f} |", flush=True)
    share = np.sum(gains, 0) / np.sum(gains)  # (of both stopped models' gains)
    print("\nthe columns with the most gain: " + ", ".join(
        f"{names[kept[i]]} {share[i]:.0%}" for i in np.argsort(-share)[:6]))
    print(f"process peak resident {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MB")


if __name__ == "__main__":
    main()
