"""What a Kaggler looks at after a run: training curves and the schedule actually applied, the
confusion matrix with the most confused pairs and per-class precision/recall (for tags: each
tag's precision/recall at its threshold), and the images the model gets most wrong. Everything
is a file in <run>/diagnostics/: PNGs and CSVs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from pipeline.core.files import write_csv
from pipeline.core.plots import image_grid, pyplot, save_png
from pipeline.training.tasks import MultiLabel, Task, decide


def smooth(values: np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Exponential moving average with bias correction (as the lr range test smooths)."""
    out, avg = np.empty(len(values)), 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def training_curves(fold_dir: Path, metric: str, path: Path) -> None:
    """Train loss per step (raw and smoothed) with validation loss per epoch; the validation
    metric per epoch; the learning rate and momentum applied at every step. Dotted lines mark
    the phases (image size in the label)."""
    steps, history = pd.read_csv(fold_dir / "steps.csv"), pd.read_csv(fold_dir / "history.csv")
    x = np.arange(len(steps))
    ends = steps.groupby(["phase", "epoch"], sort=False).size().cumsum().to_numpy()  # step count at each epoch end
    plt = pyplot()
    fig, (loss_ax, metric_ax, lr_ax) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    loss_ax.plot(x, steps["loss"], color="0.85", lw=0.8, label="train loss (step)")
    loss_ax.plot(x, smooth(steps["loss"].to_numpy()), color="C0", label="train loss (smoothed)")
    loss_ax.plot(ends, history["valid_loss"], "o-", color="C3", label="validation loss")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(fontsize=8)
    metric_ax.plot(ends, history[metric], "o-", color="C2")
    metric_ax.set_ylabel(f"validation {metric}")
    lr_ax.plot(x, steps["lr"], color="C1")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate (fastest group)")
    lr_ax.set_xlabel("step")
    mom = lr_ax.twinx()
    mom.plot(x, steps["momentum"], color="C4", lw=1)
    mom.set_ylabel("momentum (beta1)", color="C4")
    starts = steps.reset_index().groupby("phase")["index"].min()
    for phase, start in starts.items():
        size = history.loc[history["phase"] == phase, "size"].iloc[0]
        for ax in (loss_ax, metric_ax, lr_ax):
            ax.axvline(start, color="0.6", ls=":", lw=1)
        where = f", {size:.0f}px" if pd.notna(size) else ""  # (a table's phases have no size)
        loss_ax.text(start, loss_ax.get_ylim()[1], f" phase {phase + 1}{where}", va="top", fontsize=7)
    fig.suptitle(f"{fold_dir.parent.name} / {fold_dir.name}")
    fig.tight_layout()
    save_png(fig, path)


def confusion(labels: np.ndarray, probs: np.ndarray, classes: list[str], out_dir: Path) -> pd.DataFrame:
    """confusion.csv/.png (rows: true class, columns: predicted), per_class.csv (precision,
    recall, F1, support) and confused_pairs.csv (off-diagonal cells, most frequent first).
    Returns the pairs."""
    pred = probs.argmax(1)
    n = len(classes)
    cm = confusion_matrix(labels, pred, labels=range(n))
    write_csv(out_dir / "confusion.csv", pd.DataFrame(cm, columns=classes).assign(true=classes)[["true"] + classes])
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=range(n), zero_division=0)
    write_csv(out_dir / "per_class.csv", pd.DataFrame({"class": classes, "precision": p, "recall": r, "f1": f,
                                                       "support": s}))
    pairs = pd.DataFrame([{"true": classes[i], "predicted": classes[j], "count": int(cm[i, j])}
                          for i in range(n) for j in range(n) if i != j and cm[i, j] > 0])
    pairs = pairs.sort_values("count", ascending=False, kind="stable") if len(pairs) else \
        pd.DataFrame(columns=["true", "predicted", "count"])
    write_csv(out_dir / "confused_pairs.csv", pairs)
    plt = pyplot()
    side = max(5, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1)  # colour by row share, so rare classes show too
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                            color="white" if shown[i, j] > 0.5 else "black")
    ticks = range(n) if n <= 60 else []
    ax.set_xticks(ticks, [classes[i] for i in ticks], rotation=90, fontsize=7)
    ax.set_yticks(ticks, [classes[i] for i in ticks], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    save_png(fig, out_dir / "confusion.png")
    return pairs


def top_losses(images: np.ndarray, positions: np.ndarray, labels: np.ndarray, probs: np.ndarray, ids: np.ndarray,
               classes: list[str], path: Path, task: Task, thresholds=None, n: int = 16) -> pd.DataFrame:
    """A grid of the `n` predictions with the highest loss (row i's image: images[positions[i]]),
    each titled with the truth and the prediction: class and probability, or tags (those above
    their thresholds)."""
    loss = task.example_losses(labels, probs)
    order = np.argsort(-loss, kind="stable")[:n]
    if isinstance(task, MultiLabel):
        rows = pd.DataFrame({"id": ids[order], "label": [task.describe(y, classes) for y in labels[order]],
                             "predicted": task.labels(probs[order], classes, thresholds), "loss": loss[order]})
        titles = [f"{r.id}\ntrue {r.label}\npred {r.predicted}" for r in rows.itertuples()]
    else:
        p_true = probs[order, labels[order]]
        rows = pd.DataFrame({"id": ids[order], "label": [classes[i] for i in labels[order]],
                             "predicted": [classes[i] for i in probs[order].argmax(1)],
                             "p_predicted": probs[order].max(1), "p_label": p_true, "loss": loss[order]})
        titles = [f"{r.id}\ntrue {r.label} ({r.p_label:.2f})\npred {r.predicted} ({r.p_predicted:.2f})"
                  for r in rows.itertuples()]
    image_grid([images[positions[i]] for i in order], titles, path)  # (each line wrapped to its image's width)
    return rows


def per_tag(labels: np.ndarray, probs: np.ndarray, thresholds, classes: list[str], out_dir: Path) -> pd.DataFrame:
    """Multi-label: per_class.csv with each tag's threshold, precision, recall, F1 and support at
    the thresholds the submission uses, hardest (lowest F1) first. Returns the table."""
    thresholds = np.full(len(classes), 0.5) if thresholds is None else np.asarray(thresholds)
    pred = decide(probs, thresholds)
    p, r, f, s = precision_recall_fscore_support(labels.astype(bool), pred, zero_division=0)
    table = pd.DataFrame({"tag": classes, "threshold": thresholds, "precision": p, "recall": r, "f1": f,
                          "support": s}).sort_values(["f1", "support"], kind="stable")
    write_csv(out_dir / "per_class.csv", table)
    return table
