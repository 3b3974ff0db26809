"""The one training step: forward under autocast, the loss, backward through the gradient
scaler, the optimizer's step. The trainer's epochs, the range test (lr_find.py) and `pipeline
check` all train through it, so gradient clipping or accumulation is one edit here."""
from __future__ import annotations

import torch

from pipeline.core.device import Device
from pipeline.training.tasks import Task


def scaler_for(dev: Device) -> torch.amp.GradScaler:
    """Loss scaling where fp16 needs it (its small gradients underflow); a pass-through otherwise."""
    return torch.amp.GradScaler(enabled=dev.amp_dtype == torch.float16)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               x: torch.Tensor, y: torch.Tensor, dev: Device, task: Task, label_smoothing: float = 0.0,
               own: float | torch.Tensor = 1.0, partner: torch.Tensor | None = None) -> torch.Tensor:
    """One optimizer step on a batch already on the device; returns the batch's loss (the task's).
    With a mixing `partner` (mixing.py: each row's partner row), the loss is shared between the
    two targets in the examples' own shares `own`."""
    with dev.autocast():
        out = model(x)
        loss = task.loss(out, y, label_smoothing)
        if partner is not None:
            loss = own * loss + (1 - own) * task.loss(out, y[partner], label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss
