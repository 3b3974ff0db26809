"""What a Kaggler looks at after a table run: the metric and the mean residual per value of
each categorical column with few values (day of week, store type, promo), as a CSV and a plot,
and a learned embedding drawn in two dimensions (its first two principal components): days of
the week that the network places together sell alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.core.files import write_csv
from pipeline.core.plots import pyplot, save_png
from pipeline.metrics import Metric

FEW = 31  # columns with at most this many values get a residual table (a day of the month, not a store)


def residuals(frame: pd.DataFrame, columns: list[str], y: np.ndarray, p: np.ndarray, metric: Metric,
              out: Path) -> pd.DataFrame:
    """Per value of each column with few values: rows, the metric, and the mean of
    (prediction - target) / target where the target is not 0 (over- or under-predicting)."""
    scored = y != 0
    ratio = np.where(scored, (p - y) / np.where(scored, y, 1), np.nan)
    tables = []
    for c in columns:
        values = frame[c].to_numpy()
        if pd.Series(values).nunique() > FEW:
            continue
        for v in pd.unique(values):
            at = pd.isna(values) if pd.isna(v) else values == v
            v = "missing" if pd.isna(v) else v
            tables.append({"column": c, "value": v, "rows": int(at.sum()), metric.name: metric(y[at], p[at]),
                           "mean_relative_error": float(np.nanmean(ratio[at])) if scored[at].any() else np.nan})
    table = pd.DataFrame(tables).sort_values(["column", "value"], key=lambda s: s.astype(str)).reset_index(drop=True)
    write_csv(out / "residuals.csv", table)
    _bars(table, metric.name, out / "residuals.png")
    return table


def _bars(table: pd.DataFrame, metric: str, path: Path) -> None:
    plt = pyplot()
    columns = list(dict.fromkeys(table["column"]))[:9]
    fig, axes = plt.subplots(len(columns), 1, figsize=(9, 2.2 * len(columns)), squeeze=False)
    for ax, c in zip(axes[:, 0], columns):
        t = table[table["column"] == c]
        ax.bar(range(len(t)), t[metric], color="C0")
        ax.set_ylabel(metric, fontsize=8)
        ax.set_title(f"{c}: validation {metric} by value (rows under each bar's label)", fontsize=8)
        ax.set_xticks(range(len(t)), [f"{v}\n{n}" for v, n in zip(t["value"], t["rows"])], fontsize=6)
    fig.tight_layout()
    save_png(fig, path)


def embedding_map(model: torch.nn.Module, names: list[str], categories: dict[str, pd.Index], column: str,
                  path: Path) -> None:
    """`column`'s learned embedding, each value a point at its first two principal components,
    labelled when there are few (the unseen-value row 0 left out)."""
    i = names.index(column)
    weights = model.embeds[i].weight.detach().cpu().numpy()[1:]
    values = list(categories[column])
    centred = weights - weights.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T if vt.shape[0] >= 2 else np.c_[centred @ vt[:1].T, np.zeros(len(centred))]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(xy[:, 0], xy[:, 1], s=12 if len(values) > 40 else 30, color="C1")
    if len(values) <= 40:
        for (a, b), v in zip(xy, values):
            ax.annotate(str(v), (a, b), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_title(f"{column}: learned embedding ({weights.shape[1]} numbers a value), first two principal "
                 f"components", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def trees_plots(fold_dir: Path, fold: int, out: Path) -> None:
    """A fold's trees: the early-stopping loss by round (where it stopped, and the rounds the
    refit used), and each column's share of the splits' gain."""
    rounds, summary = pd.read_csv(fold_dir / "rounds.csv"), pd.read_json(fold_dir / "trees.json", typ="series")
    plt = pyplot()
    fig, (loss_ax, gain_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    loss_ax.plot(rounds["round"], rounds["stop_loss"], color="C3")
    loss_ax.axvline(summary["stopped_at"], color="0.5", ls=":", label=f"best, round {summary['stopped_at']}")
    loss_ax.axvline(summary["rounds"], color="C0", ls="--", label=f"refitted for {summary['rounds']}")
    loss_ax.set(xlabel="round", ylabel="loss", title=f"fold {fold}: loss on {summary['stopped_on']}")
    loss_ax.legend(fontsize=8)
    gain = pd.Series(summary["gain"]).head(20)[::-1]
    gain_ax.barh(gain.index, gain.to_numpy(), color="C2")
    gain_ax.set(xlabel="share of the gain", title="the columns the trees split on most")
    gain_ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    save_png(fig, out / f"trees_fold{fold}.png")
