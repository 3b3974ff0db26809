"""Where the loss jumps when a recipe leaves its precomputed-head phase (issue 17).

Trains phase 1 (the head on cached activations) of a competition's cpu recipe on one fold, then
measures the training loss of the same batches with no step taken, changing one condition of
phase 2 at a time: BatchNorm on batch statistics, the image size, augmentation. (efficientnet_lite0
has no dropout: timm's drop_rate is 0 unless asked for.)

    PIPELINE_DATA=../shared/datasets python benchmarks/phase_jump.py plant-seedlings [--batchnorm adapt|frozen|batch]

`--curves OUT.png LABEL=FOLD_DIR...` instead draws the training loss, step by step (smoothed over 10
steps), of finished runs' folds (their steps.csv) on one plot, phases marked: before and after.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.labels import label_loss
from pipeline.recipe import BATCHNORM
from pipeline.batchnorm import train_mode
from pipeline.models import freeze, layer_groups
from pipeline.run import fold_data, folds_stage, fresh_model, start
from pipeline.trainer import fit
from pipeline.transforms import ImageDataset, train_augment
from pipeline.workdir import Workdir


def mean_loss(model, images, labels, rows, size, augment, bn_batch_stats, prepare, batch):
    """Cross-entropy of the first batches of `rows`, no step taken and no running statistic changed."""
    m = copy.deepcopy(model)
    m.eval()
    for name, mod in m.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and bn_batch_stats(name):
            mod.train()
    ds = ImageDataset(images[size], labels, augment, rows=rows)
    losses = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            x, y = zip(*(ds[j] for j in range(i, min(i + batch, len(rows)))))
            losses.append(label_loss(m(prepare(torch.stack(x))), torch.tensor(np.array(y))).item())
    return float(np.mean(losses))


def curves(out: Path, fold_dirs: list[tuple[str, Path]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for label, d in fold_dirs:
        steps = pd.read_csv(d / "steps.csv")
        ax.plot(np.arange(len(steps)), steps["loss"].rolling(10, min_periods=1).mean(), lw=1, label=label)
    starts = np.flatnonzero(np.diff(steps["phase"].to_numpy())) + 1
    for s in starts:
        ax.axvline(s, color="grey", lw=0.5, ls="--")
    ax.set(xlabel="step (dashed: a new phase)", ylabel="training loss (label smoothing included)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main() -> None:
    if sys.argv[1:2] == ["--curves"]:
        return curves(Path(sys.argv[2]), [(a.partition("=")[0], Path(a.partition("=")[2])) for a in sys.argv[3:]])
    ap = argparse.ArgumentParser()
    ap.add_argument("competition")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batchnorm", choices=BATCHNORM, default="adapt")
    args = ap.parse_args()
    work = Path(tempfile.gettempdir()) / "phase_jump"  # (the decoded images are kept for the next call)
    r = start(args.competition, workdir=Workdir(work), log=lambda *a: None, batchnorm=args.batchnorm)
    rc = r.recipe
    p1, p2 = rc.phases[0], rc.phases[1]
    assert p1.precompute and not p2.precompute, "the recipe's first phase must be the precomputed head"
    folds = folds_stage(r)
    data = fold_data(r, folds, args.fold)
    r.train_images.prepare(sorted({p1.size, p2.size}))
    model = fresh_model(r)
    fit(model, replace(rc, phases=(p1,)), data, r.comp.metric, work / args.batchnorm, key="p1", dev=r.dev,
        symmetry=r.comp.symmetry, log=print)
    prepare = r.dev.place(model)
    groups = layer_groups(model)
    freeze(model, groups, p2.frozen)
    rng = np.random.default_rng(0)
    rows = rng.choice(data.train_idx, args.batches * rc.batch_size, replace=False)
    aug = train_augment(1, r.comp.symmetry, p2.size, rc.random_crop)
    trained = {n for n, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight.requires_grad}
    unfrozen = lambda name: name in trained  # noqa: E731  (as models.train_mode sets them)
    never = lambda m: False  # noqa: E731
    cases = [
        ("phase 1's view: BN running stats, no dropout, %dpx, no augmentation" % p1.size, p1.size, None, never),
        ("+ BN batch statistics in the unfrozen groups", p1.size, None, unfrozen),
        ("%dpx (phase 2's size)" % p2.size, p2.size, None, never),
        ("%dpx + augmentation" % p2.size, p2.size, aug, never),
        ("phase 2 as trained: all of the above", p2.size, aug, never if rc.batchnorm == "frozen" else unfrozen),
    ]
    print(f"{args.competition} fold {args.fold}, batchnorm={rc.batchnorm}: loss (cross-entropy, no smoothing) over "
          f"{len(rows)} training images, no step taken")
    for name, size, a, bn in cases:
        if a is not None:
            a.set_random_seed(1)
        loss = mean_loss(model, data.images, data.labels, rows, size, a, bn, prepare, rc.batch_size)
        print(f"  {loss:7.4f}  {name}")
    train_mode(model, rc.batchnorm)  # (what the trainer does: checks the helper above sets the same modules)
    assert {n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training} \
        == (set() if rc.batchnorm == "frozen" else trained)


if __name__ == "__main__":
    main()
