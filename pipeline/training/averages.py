"""Averaged weights, each predicting beside the fold's checkpoint (ensemble.py): stochastic
weight averaging (SWA, Izmailov et al., 2018), the mean of the weights at the SWA phases'
averaging points; and an exponential moving average (EMA) of the weights after every step.
Both keep torch's AveragedModel, and both end with their BatchNorm statistics recomputed on the
data, since an average's statistics belong to none of the weights averaged."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.core.device import Device
from pipeline.metrics import Metric
from pipeline.recipe import Recipe
from pipeline.training import batchnorm
from pipeline.training.checkpoints import checkpoint, save
from pipeline.training.epochs import epoch_loader, validate
from pipeline.training.folds import FoldData
from pipeline.training.models import freeze, layer_groups


class WeightAverage:
    """Stochastic weight averaging: the running mean of the weights at the SWA phases' averaging
    points, saved as swa.pt."""
    name, file = "SWA", "swa.pt"

    def __init__(self, model: nn.Module, state: dict | None = None):
        self.model, self.averaged = model, None
        if state:
            self.averaged = self._new()
            self.averaged.load_state_dict(state)

    def _new(self) -> AveragedModel:
        return AveragedModel(self.model)

    def update(self) -> None:
        self.averaged = self.averaged or self._new()
        self.averaged.update_parameters(self.model)

    def state_dict(self) -> dict | None:
        return self.averaged and self.averaged.state_dict()

    def phase(self, recipe: Recipe) -> int:
        """The phase whose size and frozen groups the average is settled at: the last that averages."""
        return max(i for i, p in enumerate(recipe.phases) if p.swa)

    def finish(self, recipe: Recipe, data: FoldData, metric: Metric, out_dir: Path, dev: Device,
               log: Callable) -> None:
        settle(self.averaged.module, self.phase(recipe), self.name, recipe, data, metric, out_dir / self.file, dev,
               log)


class MovingAverage(WeightAverage):
    """An exponential moving average of the weights, `decay` per training step (timm's ModelEma;
    0.998 keeps about the last 500 steps), from the first step that trains the body; saved as
    ema.pt. The steps of a precomputed head leave the body as it was: nothing to average yet."""
    name, file = "EMA", "ema.pt"

    def __init__(self, model: nn.Module, decay: float, state: dict | None = None):
        self.decay = decay
        super().__init__(model, state)

    def _new(self) -> AveragedModel:
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay))

    def phase(self, recipe: Recipe) -> int:
        return len(recipe.phases) - 1


def settle(net: nn.Module, pi: int, name: str, recipe: Recipe, data: FoldData, metric: Metric, path: Path,
           dev: Device, log: Callable) -> None:
    """Recompute averaged weights' BatchNorm statistics over one more epoch of training batches
    at phase `pi`'s size (as the SWA authors' bn_update does), then validate and save them.
    Training batches, not merely the training images: shuffled (our images come sorted by class,
    and single-class batches understate the variance) and augmented at the training batch size,
    the conditions the weights learned under. On plant-seedlings, recomputing a single snapshot's
    statistics that way gives back its validation loss (0.2406 trained, 0.2402-0.2406
    recomputed); plain images in class order, 0.2942."""
    t0, phase = time.time(), recipe.phases[pi]
    inputs, t = data.inputs, data.train_idx
    prepare = inputs.placer(net, dev)
    freeze(net, layer_groups(net), phase.frozen)
    train_ds = inputs.dataset(t, data.labels, phase, recipe, dev, augment=recipe.seed)
    train_prepare = inputs.on_device(prepare, recipe.seed, dev)
    # every rank the whole epoch, as one process would: the same statistics on each
    train_dl = epoch_loader(train_ds, np.arange(len(t)), min(recipe.batch_size, len(t)), recipe.seed, dev,
                            shard=False)
    if recipe.batchnorm != "frozen":  # (frozen: the weights trained with the statistics they have)
        batchnorm.recompute(net, (train_prepare(x) for x, _ in train_dl), dev)
    valid_ds = inputs.dataset(data.valid_idx, data.labels, phase, recipe, dev)
    valid_loss, probs = validate(net, valid_ds, recipe.batch_size * 2, prepare, dev, data.task)
    score = metric(*data.task.in_units(data.labels[data.valid_idx], probs))
    log(f"  {name}: averaged weights with BatchNorm recomputed{' at ' * bool(phase.size)}{phase.pixels}  valid_loss {valid_loss:.4f}  "
        f"{metric.name} {score:.4f}  {time.time() - t0:.0f}s")
    row = {"phase": pi, "epoch": phase.epochs - 1, "size": phase.size, "valid_loss": valid_loss, metric.name: score}
    if dev.group.main:
        save(checkpoint(net, recipe, row, data.task), path)
