"""Rows/s of the shared trainer on Rossmann's rows against a bare PyTorch loop over the same
model, rows, batch, threads and optimizer.

    PIPELINE_DATA=../shared/datasets python benchmarks/tables_throughput.py --rows 200000 --batches 512 4096

The rows: a seeded sample of fold 2's training rows, encoded by the fold's own encoding (as the
run fits it: rossmann_fold.py), one float32 array, codes first. The model: EntityEmbeddings at the
recipe's widths (1000, 500), seeded alike on both sides. One epoch each, the last part-batch
dropped on both sides.

- bare: the loop anyone would write: torch.randperm, each batch one gather from the contiguous
  tensor, no DataLoader; the forward pass, the task's own loss (MSE on the output squashed into
  the log-sales range), backward, fused AdamW (betas 0.9/0.99, weight decay 0.2, as the trainer's),
  the 1cycle rate and momentum set every step; one loss.item() at the end.
- trainer: `trainer.fit` with a one-phase recipe (1 epoch, 1cycle, lr 3e-3), the same rows as a
  FoldData. Timed: the epoch's `seconds` in its history, which span building the epoch's loader,
  the epoch (bar, schedule, a loss row per step) and validating; validation runs on `--valid`
  rows only, and its time, measured by the same `validate` call afterwards, is taken off. The
  checkpoints `fit` writes after the epoch fall outside.

Then what a batch costs to fetch, alone, in ms: the trainer's epoch loader (epochs.epoch_loader:
a BatchSampler's list of positions through a Subset into Rows.__getitems__) against the bare
loop's slice of the permutation and gather: the part of the gap that is the loader's.

Each side runs `--repeats` times, alternating; the table gives the best of them (the fastest pass is
the one the other users of a shared machine disturbed least). A few untimed bare steps first warm
the allocator. Record results in RESULTS.md."""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.core.device import Device
from pipeline.recipe import Phase
from pipeline.tables.inputs import TableInputs
from pipeline.tables.model import WIDTHS, EntityEmbeddings
from pipeline.tables.inputs import Rows
from pipeline.training.epochs import epoch_loader, validate
from pipeline.training.folds import FoldData
from pipeline.training.schedules import one_cycle
from pipeline.training.trainer import fit
from rossmann_fold import rossmann_fold

LR, WEIGHT_DECAY = 3e-3, 0.2  # the recipe's


def fresh_model(enc) -> torch.nn.Module:
    torch.manual_seed(0)
    return EntityEmbeddings(enc.cardinalities, len(enc.continuous), WIDTHS, 1)


def bare(model, x: torch.Tensor, y: torch.Tensor, batch: int, task, steps: int | None = None) -> float:
    """One epoch (or `steps` steps) of the plain loop; returns its seconds."""
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=WEIGHT_DECAY, fused=True)
    model.train()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    total = len(x) // batch
    for i in range(steps or total):
        mult, momentum = one_cycle(i / total)
        for g in opt.param_groups:
            g["lr"], g["betas"] = LR * mult, (momentum, 0.99)
        at = order[i * batch:(i + 1) * batch]
        loss = task.loss(model(x[at]), y[at])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()
    return time.perf_counter() - t0


def trainer(model, recipe, data: FoldData, metric, dev: Device) -> tuple[float, float, float]:
    """(the epoch's seconds less validation, validation's seconds, fit's wall seconds)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        history = fit(model, recipe, data, metric, Path(out), key="bench", dev=dev, log=lambda *a: None)
        wall = time.perf_counter() - t0
    valid_ds = data.inputs.dataset(data.valid_idx, data.labels, recipe.phases[0], recipe, dev)
    t0 = time.perf_counter()
    validate(model, valid_ds, recipe.batch_size * 2, lambda x: x, dev, data.task)
    valid = time.perf_counter() - t0
    return float(history["seconds"].iloc[0]) - valid, valid, wall


def fetch_ms(x: torch.Tensor, y: torch.Tensor, batch: int, dev: Device) -> tuple[float, float]:
    """(ms a batch through the trainer's epoch loader, ms a batch sliced and gathered as the bare loop does)."""
    steps = len(x) // batch
    t0 = time.perf_counter()
    for _ in epoch_loader(Rows(x, y), np.arange(len(x)), batch, 0, dev):
        pass
    loader = time.perf_counter() - t0
    t0 = time.perf_counter()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    for i in range(steps):
        at = order[i * batch:(i + 1) * batch]
        x[at], y[at]
    return loader / steps * 1e3, (time.perf_counter() - t0) / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000, help="training rows sampled from fold 2's")
    ap.add_argument("--valid", type=int, default=2048, help="validation rows the trainer scores after its epoch")
    ap.add_argument("--batches", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = Device.pick("cpu")

    fold = rossmann_fold()
    rng = np.random.default_rng(0)
    rows = np.r_[rng.choice(fold.train_idx, args.rows, replace=False), rng.choice(fold.valid_idx, args.valid, False)]
    enc, task = fold.inputs.encoding, fold.comp.task
    labels = task.encode(pd.Series(fold.sales[rows]))
    data = FoldData(inputs=TableInputs(fold.inputs.x[rows], encoding=enc), labels=labels,
                    train_idx=np.arange(args.rows), valid_idx=np.arange(args.rows, len(rows)), task=task)
    x, y = torch.from_numpy(np.ascontiguousarray(fold.inputs.x[rows[:args.rows]])), torch.from_numpy(labels[:args.rows])
    base = fold.comp.recipes["cpu"]

    print(f"cpu, {args.threads} threads; {args.rows} training rows x {x.shape[1]} columns, one epoch each, "
          f"best of {args.repeats}; trainer: validation on {args.valid} rows taken off\n")
    print("| batch | steps | bare rows/s | trainer rows/s | ratio | all passes (s): bare; trainer (+ validation) |")
    print("|---|---|---|---|---|---|")
    for batch in args.batches:
        recipe = replace(base, batch_size=batch, phases=(Phase(epochs=1, lr=LR),))
        steps = args.rows // batch
        bare(fresh_model(enc), x, y, batch, task, steps=min(steps, 20))  # warm-up
        times = {"bare": [], "trainer": []}
        valids = []
        for _ in range(args.repeats):
            times["bare"].append(bare(fresh_model(enc), x, y, batch, task))
            epoch, valid, _ = trainer(fresh_model(enc), recipe, data, fold.comp.metric, dev)
            times["trainer"].append(epoch)
            valids.append(valid)
        rate = {k: steps * batch / min(v) for k, v in times.items()}
        passes = ", ".join(f"{t:.1f}" for t in times["bare"]) + "; " + ", ".join(
            f"{t:.1f} (+{v:.2f})" for t, v in zip(times["trainer"], valids))
        print(f"| {batch} | {steps} | {rate['bare']:,.0f} | {rate['trainer']:,.0f} | "
              f"{rate['trainer'] / rate['bare']:.2f} | {passes} |", flush=True)
    print("\n| batch | trainer's loader, ms a batch | bare slice and gather, ms a batch |\n|---|---|---|")
    for batch in args.batches:
        loader, sliced = fetch_ms(x, y, batch, dev)
        print(f"| {batch} | {loader:.3f} | {sliced:.3f} |")


if __name__ == "__main__":
    main()
