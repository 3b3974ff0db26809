"""BatchNorm statistics: which layers train on batch statistics, and recomputing running ones.

Why it matters (issue 17, benchmarks/RESULTS.md "The cause"): a head fitted on precomputed activations
saw the body's BatchNorm normalise with the pretrained ImageNet running statistics. When the next
phase trains the body, its BatchNorm layers normalise each batch by the batch's own statistics,
and on plant-seedlings the head then meets features so different that its loss is at chance (0.68
-> 2.39, no step taken) and the first epochs of fine-tuning are spent recovering. `adapt`
recomputes the running statistics on the fold's own images before the head is fitted, so both
normalisations agree; a recipe's `batchnorm="frozen"` instead keeps every layer on the running
statistics for good."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.core.device import Device
from pipeline.training.epochs import epoch_loader

ADAPT_BATCHES = 200  # enough images for the statistics of a large training set, without a pass over all


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def train_mode(model: nn.Module, batchnorm: str = "batch") -> None:
    """Train mode, except BatchNorm layers whose weights are frozen: their running statistics
    stay as they are (fast.ai's behaviour for frozen layer groups). batchnorm="frozen": every
    BatchNorm layer stays on its running statistics, its weight and bias still trained."""
    model.train()
    for m in _layers(model):
        if batchnorm == "frozen" or (m.weight is not None and not m.weight.requires_grad):
            m.eval()


@torch.no_grad()
def recompute(model: nn.Module, batches, dev: Device, every: bool = False) -> None:
    """BatchNorm running statistics recomputed as a plain average over `batches` (as
    torch.optim.swa_utils.update_bn does): of every layer with `every`, else only of the layers
    that train (frozen groups keep the statistics they trained with)."""
    if every:
        model.train()
    else:
        train_mode(model)
    bns = [m for m in _layers(model) if m.training]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
    for x in batches:
        with dev.autocast():
            model(x)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()


def adapt(model: nn.Module, plain, batch_size: int, seed: int, dev: Device, prepare) -> None:
    """Every BatchNorm layer's running statistics recomputed on the examples of `plain` (the
    fold's training examples as the precomputed head sees them), in shuffled batches of the
    training batch size: class-sorted batches would understate the variance."""
    loader = epoch_loader(plain, np.arange(len(plain)), min(batch_size, len(plain)), seed,
                          dev, shard=False)  # every rank the same batches: the same statistics on each
    batches = (prepare(x) for i, x in zip(range(ADAPT_BATCHES), loader))
    recompute(model, batches, dev, every=True)
