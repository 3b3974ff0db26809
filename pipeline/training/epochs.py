"""One epoch of training and one pass of validation, and the loader that seeds each epoch:
the pieces the trainer (trainer.py) loops over, which the range test and SWA reuse."""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.core.progress import bar as progress_bar
from pipeline.recipe import Phase
from pipeline.training.mixing import Mixer
from pipeline.training.models import features
from pipeline.training.schedules import lr_at
from pipeline.training.step import scaler_for, train_step
from pipeline.training.tasks import Task


def make_optimizer(groups: dict[str, list[nn.Parameter]], phase: Phase, weight_decay: float):
    """AdamW with one param group per (layer group, decay or not), each carrying its peak rate.
    Frozen groups are left out; biases and norm weights get no weight decay."""
    names = list(groups)
    peaks = phase.lr if isinstance(phase.lr, tuple) else (phase.lr,) * len(names)
    param_groups = []
    for name, peak in zip(names, peaks):
        if name in phase.frozen:
            continue
        decay = [p for p in groups[name] if p.ndim > 1]
        no_decay = [p for p in groups[name] if p.ndim <= 1]
        for ps, wd in ((decay, weight_decay), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": peak, "peak_lr": peak, "weight_decay": wd,
                                     "layer_group": name})
    return torch.optim.AdamW(param_groups, betas=(0.9, 0.99), fused=True)  # one kernel for all tensors


def set_schedule(optimizer, phase: Phase, step: int, steps_per_epoch: int) -> tuple[float, float | None]:
    mult, momentum = lr_at(phase, step, steps_per_epoch)
    for g in optimizer.param_groups:
        g["lr"] = g["peak_lr"] * mult
        if momentum is not None:
            g["betas"] = (momentum, g["betas"][1])
    return mult, momentum


def train_one_epoch(model, loader, optimizer, *, phase: Phase, epoch: int, prepare: Callable,
                    dev: Device, task: Task, label_smoothing: float, desc: str,
                    after_step: Callable[[], None] | None = None, mix: Mixer | None = None) -> list[dict]:
    """One pass over `loader`, each batch mixed by `mix` (mixup / cutmix) when given, calling
    `after_step()` after each optimizer step; returns one row per step (lr, momentum, loss)."""
    steps, rows = len(loader), []
    scaler = scaler_for(dev)
    bar = progress_bar(loader, desc, unit="batches", dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        step = epoch * steps + i
        set_schedule(optimizer, phase, step, steps)
        x, y = prepare(x), y.to(dev.device, non_blocking=True)
        own, partner = 1.0, None
        if mix is not None:
            x, own, partner = mix(x)
        loss = train_step(model, optimizer, scaler, x, y, dev, task, label_smoothing, own, partner)
        if after_step is not None:
            after_step()
        loss = loss.item()
        g = optimizer.param_groups[-1]  # the fastest group: the head's, or the latest unfrozen
        rows.append({"step": step, "lr": g["lr"], "momentum": g["betas"][0], "loss": loss})
        bar.set_postfix(loss=f"{loss:.3f}")
    return rows


@torch.inference_mode()
def validate(model, dataset, batch_size: int, prepare: Callable, dev: Device, task: Task) -> tuple[float, np.ndarray]:
    """The task's mean loss and predictions (class or tag probabilities) over `dataset`: with
    several ranks, each takes its share and all get the whole result."""
    model.eval()
    share = dev.group.share(len(dataset))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, share.tolist()), batch_size,
                                         num_workers=dev.workers if len(share) else 0, collate_fn=collate(dataset))
    loss, probs = 0.0, []
    for x, y in loader:
        with dev.autocast():
            logits = model(prepare(x)).float()
        loss += task.loss(logits, y.to(dev.device), reduction="sum").item()
        probs.append(task.predictions(logits).cpu().numpy())
    p = dev.group.joined(np.concatenate(probs) if probs else np.zeros((0,)))
    return sum(dev.group.gather(loss)) / len(p), p


@torch.inference_mode()
def body_features(model, dataset, prepare: Callable, dev: Device, batch_size: int) -> torch.Tensor:
    """What the frozen body makes of each example of `dataset` (models.features: its pooled
    output, the classifier's input), in order; each rank computes its share and all get the whole."""
    model.eval()
    share = dev.group.share(len(dataset))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, share.tolist()), batch_size,
                                         num_workers=dev.workers if len(share) else 0, collate_fn=collate(dataset))
    out = []
    for x in progress_bar(loader, "precompute activations", unit="batches"):
        with dev.autocast():
            out.append(features(model, prepare(x)).float().cpu().numpy())
    return torch.from_numpy(dev.group.joined(np.concatenate(out) if out else np.zeros((0,), np.float32)))


class _RankSlices:
    """This rank's slice of every global batch: the ranks together take exactly the batches one
    process would, so a run on N ranks sees the same images per step as on one."""

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            per = len(batch) // self.world
            yield batch[self.rank * per:(self.rank + 1) * per]


def epoch_loader(train_ds, order: np.ndarray, batch_size: int, seed: int, dev: Device, shard: bool = True):
    """One epoch's batches: the positions `order` into train_ds, shuffled, and their augmentation,
    both seeded by `seed`, so that a resumed run sees exactly the batches it would have seen.
    `batch_size` is the global batch: with several ranks (and `shard`), each rank takes its slice
    of every batch, augmented with a stream of its own."""
    rank = dev.group.rank if shard and dev.group.active else 0
    if getattr(train_ds, "augment", None) is not None:
        train_ds.augment.set_random_seed(seed + 1_000_003 * rank)
    generator = torch.Generator().manual_seed(seed)  # (as DataLoader(shuffle=True) draws: same batches as ever)
    batches = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(range(len(order)), generator=generator),
                                            batch_size, drop_last=True)
    if shard and dev.group.active:
        batches = _RankSlices(batches, rank, dev.group.world)
    return torch.utils.data.DataLoader(torch.utils.data.Subset(train_ds, order.tolist()), batch_sampler=batches,
                                       generator=generator, num_workers=dev.workers, collate_fn=collate(train_ds),
                                       worker_init_fn=functools.partial(_seed_worker, rank=rank),
                                       pin_memory=dev.device.type == "cuda")


def collate(dataset):
    """The dataset's own collation when it fetches a whole batch at once (`__getitems__`, as a
    table's rows do), else torch's default, which stacks examples one by one."""
    return getattr(dataset, "collate", None)


def _seed_worker(worker_id: int, rank: int = 0) -> None:
    # each loader worker (of each rank) gets its own augmentation stream (albumentations would repeat one)
    info = torch.utils.data.get_worker_info()
    seed = (torch.initial_seed() + 1_000_003 * rank) % 2**31
    aug = getattr(getattr(info.dataset, "dataset", info.dataset), "augment", None)  # through Subset
    if aug is not None:
        aug.set_random_seed(seed)
    np.random.seed(seed)
