"""`pipeline check`: the sanity checks worth running before a long training run.

1. One training batch as the model receives it (augmented, normalised, then mapped back to
   pixels), each image titled with its label: wrong labels, channels or normalisation show.
   For a table: the table as the model receives it, column by column (columns.csv: each
   column's kind, distinct values, missing shares and range) and in a short summary.
2. Overfit a few dozen images (rows of a table): no augmentation, no weight decay, dropout or
   label smoothing, the same batch every step. A network that can learn memorises them (loss
   near zero; for a number, below 5% of the loss of guessing the batch's mean); if it cannot,
   labels, learning rate or frozen weights are wrong.
Images nearly constant once decoded (vision/spread.py), which a network may still memorise, are
a warning on the first line. Only the images checked are decoded (seconds, not the minutes the
whole training set takes); the last line says how many of them, and that unreadable images and
near duplicates among the rest are `pipeline run`'s to find.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.recipe import Phase
from pipeline.stages.context import Run
from pipeline.core.files import write_csv
from pipeline.core.plots import image_grid, pyplot, save_png
from pipeline.stages.train import fresh_model
from pipeline.training.epochs import epoch_loader
from pipeline.training.models import freeze, layer_groups, normalization
from pipeline.training.step import scaler_for, train_step
from pipeline.training.tasks import Regression, Task
from pipeline.vision.inputs import Images
from pipeline.vision.spread import nearly_constant


@dataclass
class Overfit:
    passed: bool
    losses: list[float]
    message: str


def overfit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dev: Device, task: Task, steps: int = 200,
            lr: float = 1e-3, target: float = 0.05, what: str = "images") -> Overfit:
    """Train `model` on the single batch (x, y) until its loss is below `target` or `steps` run out.
    `what` the batch holds, as the messages name it ("images", "rows")."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return Overfit(False, [], "every weight is frozen: nothing can learn (unfreeze a layer group)")
    for m in model.modules():  # no regularisation: the point is to memorise
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    if hasattr(model, "drop_rate"):
        model.drop_rate = 0.0
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    scaler = scaler_for(dev)
    for _ in range(steps):
        loss = train_step(model, optimizer, scaler, x, y, dev, task)
        losses.append(loss.item())
        if not np.isfinite(losses[-1]) or losses[-1] < target:
            break
    first, last = losses[0], losses[-1]
    if last < target:
        return Overfit(True, losses, f"memorised {len(y)} {what}: loss {first:.3f} -> {last:.4f} in {len(losses)} steps")
    if not np.isfinite(last):
        return Overfit(False, losses, f"the loss became {last}: the learning rate ({lr:g}) is too high")
    if last > 0.9 * first:
        why = "the weights barely move: frozen layer groups, or a learning rate far too low"
    else:
        shown = "the rows (look at columns.csv)" if what == "rows" else "the images (look at the batch PNG)"
        why = f"it learns, but cannot fit them: labels that do not match {shown}, " \
              "a learning rate too low, or too much of the network frozen"
    return Overfit(False, losses, f"could not memorise {len(y)} {what} in {len(losses)} steps "
                                  f"(loss {first:.3f} -> {last:.3f}, wanted < {target:.3g}): {why}")


def labelled_batch(x: torch.Tensor, y: torch.Tensor, classes: list[str], task: Task, mean, std, path,
                   n: int = 16) -> None:
    """The model's inputs mapped back to pixels, titled with their labels."""
    pixels = (x[:n].float().cpu() * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1))
    pixels = pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    titles = [task.describe(label, classes) for label in y[:n].cpu().numpy()]
    image_grid(pixels, titles, path, cell=(2.6, 2.8), fontsize=8)


LR = {"images": 1e-3, "table": 1e-2}  # a pretrained body is fine-tuned; a table's network learns from scratch


def check(r: Run, images: int = 48, steps: int = 200, size: int = 64, lr: float | None = None,
          frozen: tuple[str, ...] = (), shuffle_labels: bool = False) -> tuple[bool, str]:
    """Both checks on the competition's data and the recipe's model; files in <run>/check/.
    A table's: its columns instead of a batch of pictures, and `images` rows (`size` unused).
    `lr` None: the kind of data's own (LR)."""
    lr = LR["table" if r.comp.table else "images"] if lr is None else lr
    out = r.run_dir / "check"
    rng = np.random.default_rng(r.recipe.seed)
    y_all = r.targets
    groups = r.comp.task.strata(y_all)  # every class (or rarest tag, or range of a number) represented
    per_class = -(-images // len(np.unique(groups)))
    picked = np.concatenate([rng.permutation(np.flatnonzero(groups == c))[:per_class]
                             for c in np.unique(groups)])[:images]
    y = y_all[picked]
    if shuffle_labels:  # what a broken label join looks like: a deliberate failure
        y = rng.permutation(y)
    if r.comp.table:
        return _check_table(r, picked, y, steps, lr, frozen, out)
    # only the images it looks at: decoding the whole training set is the run's images stage
    imgs = r.train_images.subset(picked, "decode check")[size]
    warning = nearly_constant(imgs, r.data_dir)
    model = fresh_model(r)
    inputs, phase = Images({size: imgs}, r.comp.symmetry), Phase(size=size, epochs=1, lr=lr)
    prepare, (mean, std) = inputs.placer(model, r.dev), normalization(model)

    augmented = inputs.dataset(np.arange(len(y)), y, phase, r.recipe, r.dev, augment=r.recipe.seed)
    xb, yb = next(iter(epoch_loader(augmented, np.arange(len(y)), min(r.recipe.batch_size, len(y)), 0, r.dev)))
    labelled_batch(inputs.on_device(prepare, 0, r.dev)(xb), yb, r.comp.classes, r.comp.task, mean, std,
                   out / "batch.png")

    freeze(model, layer_groups(model), frozen)
    x = prepare(torch.from_numpy(imgs))
    result = overfit(model, x, torch.from_numpy(y).to(r.dev.device), r.dev, r.comp.task, steps, lr)
    verdict = _loss_curve(result, f"overfit {len(y)} images at {size}px", out / "overfit.png")
    return result.passed, ((f"WARNING: {warning}\n" if warning else "")
                           + f"labelled batch (as the model sees it): {out / 'batch.png'}\n"
                           f"{verdict}: {result.message}\nloss curve: {out / 'overfit.png'}\n"
                           f"{_unseen(len(y), len(y_all))}")


def _unseen(looked: int, total: int) -> str:
    """What check did not look at: it decodes only the images it uses."""
    run = ("`pipeline run` decodes every one, names the unreadable and the near duplicates, and predicts "
           "test images that cannot be read from the class prior")
    if looked == total:
        return f"looked at all {total} training images and no test image; {run}"
    return f"looked at {looked} of {total} training images and no test image; {run}"


def _check_table(r: Run, picked: np.ndarray, y: np.ndarray, steps: int, lr: float, frozen: tuple[str, ...],
                 out: Path) -> tuple[bool, str]:
    """The table's columns as the encoding reads them (fitted on every training row), then the
    network memorising the rows at `picked` (targets `y`, as the model learns them)."""
    source, n = r.source, len(r.targets)
    inputs = source.inputs(np.arange(n))
    summary = table_summary(source.train, source.test, inputs.encoding, r.comp.layout, out / "columns.csv")
    model = fresh_model(r, inputs)
    freeze(model, layer_groups(model), frozen)
    x = inputs.placer(model, r.dev)(torch.from_numpy(inputs.x[picked]))
    # a number has no loss near zero to reach: memorised is below 5% of the loss of guessing the batch's
    # mean (its variance), as a classifier's 0.05 is far below guessing among its classes
    target = 0.05 * max(float(np.var(y)), 1e-3) if isinstance(r.comp.task, Regression) else 0.05
    result = overfit(model, x, torch.from_numpy(y).to(r.dev.device), r.dev, r.comp.task, steps, lr, target, "rows")
    if not result.passed:
        result.message += _stuck(model, x, r.comp.task)
    verdict = _loss_curve(result, f"overfit {len(y)} of {n} rows", out / "overfit.png")
    return result.passed, (f"{summary}\ncolumns (as the model sees them): {out / 'columns.csv'}\n"
                           f"{verdict}: {result.message}\nloss curve: {out / 'overfit.png'}")


def _stuck(model: nn.Module, x: torch.Tensor, task: Task) -> str:
    """Why a number can stop falling: rows whose output sits far out on the sigmoid that squashes
    it into the target's range (tasks.Regression) have no gradient left, and stay where they are."""
    if not isinstance(task, Regression) or task.low is None:
        return ""
    with torch.no_grad():
        out = model(x).float().squeeze(1)
    stuck = int((out.abs() > 6).sum())  # (the sigmoid's slope below 0.0025 of its peak's 0.25)
    return (f"; {stuck} of {len(out)} rows' predictions are stuck at an end of the target's range (the output's "
            f"sigmoid saturated: no gradient moves them back)" if stuck else "")


def table_summary(train: pd.DataFrame, test: pd.DataFrame, enc, layout, path: Path) -> str:
    """Rows, the target's range, each column's kind, distinct values (a categorical column's
    embedding rows less the unseen one) and missing shares in training and test: written to
    `path` as a table, said in a few lines."""
    target = train[layout.target]
    rows = [dict(column=c, kind="categorical", values=len(enc.categories[c])) for c in enc.categories]
    rows += [dict(column=c, kind="continuous", values=int(train[c].nunique()),
                  low=float(train[c].min()), high=float(train[c].max())) for c in enc.continuous]
    for row in rows:
        row.update(missing_train=float(train[row["column"]].isna().mean()),
                   missing_test=float(test[row["column"]].isna().mean()) if len(test) else 0.0)
    table = pd.DataFrame(rows, columns=["column", "kind", "values", "low", "high", "missing_train", "missing_test"])
    write_csv(path, table)
    cat = table[table["kind"] == "categorical"]
    cont = table[table["kind"] == "continuous"]
    gaps = table[(table["missing_train"] > 0) | (table["missing_test"] > 0)]
    lines = [f"table: {len(train)} training rows (after the skip rule), {len(test)} test rows",
             f"target {layout.target}: {target.min():.6g} to {target.max():.6g} (median {target.median():.6g})"
             + (f", learnt as {layout.transform}" if layout.transform else ""),
             f"categorical ({len(cat)}, values seen in training): "
             + ", ".join(f"{c} {v}" for c, v in zip(cat["column"], cat["values"])),
             f"continuous ({len(cont)}): " + ", ".join(cont["column"])]
    lines.append("missing (training / test; a continuous column's filled by the training median, flagged): "
                 + (", ".join(f"{c} {a:.0%} / {b:.0%}" for c, a, b in
                              zip(gaps["column"], gaps["missing_train"], gaps["missing_test"])) or "none"))
    return "\n".join(lines)


def _loss_curve(result: Overfit, title: str, path: Path) -> str:
    """The overfitting loss per step as a PNG at `path`; PASS or FAIL."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result.losses or [np.nan])
    ax.set_yscale("log")
    ax.set_xlabel("step (the same batch every step)")
    ax.set_ylabel("training loss")
    verdict = "PASS" if result.passed else "FAIL"
    ax.set_title(f"{verdict}: {title}", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
    return verdict
