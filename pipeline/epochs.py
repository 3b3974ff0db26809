"""One epoch of training and one pass of validation, and the loader that seeds each epoch:
the pieces the trainer (trainer.py) loops over, which the range test and SWA reuse."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .device import Device
from .labels import label_loss, probabilities
from .models import normalization
from .recipe import Phase
from .schedules import lr_at
from .transforms import to_input


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
                    dev: Device, label_smoothing: float, desc: str) -> list[dict]:
    """One pass over `loader`; returns one row per step (lr, momentum, loss)."""
    steps, rows = len(loader), []
    scaler = torch.amp.GradScaler(enabled=dev.amp_dtype == torch.float16)
    bar = tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
    for i, (x, y) in enumerate(bar):
        step = epoch * steps + i
        set_schedule(optimizer, phase, step, steps)
        x, y = prepare(x), y.to(dev.device, non_blocking=True)
        with dev.autocast():
            loss = label_loss(model(x), y, label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss = loss.item()
        g = optimizer.param_groups[-1]  # the fastest group: the head's, or the latest unfrozen
        rows.append({"step": step, "lr": g["lr"], "momentum": g["betas"][0], "loss": loss})
        bar.set_postfix(loss=f"{loss:.3f}")
    return rows


@torch.inference_mode()
def validate(model, loader, prepare: Callable, dev: Device) -> tuple[float, np.ndarray]:
    """Mean loss (cross-entropy, or binary cross-entropy for tags) and class probabilities over `loader`."""
    model.eval()
    losses, probs = [], []
    for x, y in loader:
        with dev.autocast():
            logits = model(prepare(x)).float()
        losses.append(label_loss(logits, y.to(dev.device), reduction="sum").item())
        probs.append(probabilities(logits, y.ndim == 2).cpu().numpy())
    p = np.concatenate(probs)
    return sum(losses) / len(p), p


@torch.inference_mode()
def body_features(model, images: np.ndarray, dev: Device, batch_size: int) -> torch.Tensor:
    """Pooled activations of the body (everything before the classifier) for uint8 images."""
    model.eval()
    mean, std = normalization(model)
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="precompute activations", leave=False):
        x = to_input(torch.from_numpy(images[i:i + batch_size]), mean, std, dev.device, dev.channels_last)
        with dev.autocast():
            out.append(model.forward_head(model.forward_features(x), pre_logits=True).float())
    return torch.cat(out)


def epoch_loader(train_ds, order: np.ndarray, batch_size: int, seed: int, dev: Device):
    """One epoch's batches: the positions `order` into train_ds, shuffled, and their augmentation,
    both seeded by `seed`, so that a resumed run sees exactly the batches it would have seen."""
    if getattr(train_ds, "augment", None) is not None:
        train_ds.augment.set_random_seed(seed)
    return torch.utils.data.DataLoader(torch.utils.data.Subset(train_ds, order.tolist()), batch_size, shuffle=True,
                                       drop_last=True, generator=torch.Generator().manual_seed(seed),
                                       num_workers=dev.workers, worker_init_fn=_seed_worker,
                                       pin_memory=dev.device.type == "cuda")


def _seed_worker(worker_id: int) -> None:
    # each loader worker gets its own augmentation stream (albumentations would repeat one)
    info = torch.utils.data.get_worker_info()
    seed = torch.initial_seed() % 2**31
    aug = getattr(getattr(info.dataset, "dataset", info.dataset), "augment", None)  # through Subset
    if aug is not None:
        aug.set_random_seed(seed)
    np.random.seed(seed)
