"""The learning-rate range test (Leslie Smith, 2015; fast.ai's `lr_find`): train for up to a few
hundred batches with the rate growing geometrically from ~1e-7 to ~10, follow the smoothed
loss, stop once it blows up, then put the weights and optimizer back as they were.

Differential rates keep their ratios: every layer group's rate is scaled by the same factor,
and the rate reported is the fastest group's (the head's), as fast.ai reports it. The trainer's
`phase_range_test` runs it under a recipe phase's exact conditions.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.core.plots import pyplot, save_png
from pipeline.training.step import scaler_for, train_step
from pipeline.training.tasks import Task


@dataclass
class RangeTest:
    lrs: np.ndarray       # the fastest group's rate at each step taken
    losses: np.ndarray    # each step's batch loss
    smoothed: np.ndarray  # exponential moving average of the losses, bias-corrected
    diverged: bool        # stopped because the smoothed loss passed 4x its best

    @property
    def skip(self) -> int:
        """Points left out of the suggestions: the first few, where the average is still settling."""
        return 10 if len(self.lrs) > 30 else 0

    @property
    def minimum(self) -> float:
        """The rate at the lowest smoothed loss."""
        return float(self.lrs[self.skip + int(np.argmin(self.smoothed[self.skip:]))])

    @property
    def steepest(self) -> float:
        """The rate where the smoothed loss falls fastest (per log-rate), on the way down to its minimum."""
        start, end = self.skip, self.skip + int(np.argmin(self.smoothed[self.skip:])) + 1
        w = max(1, len(self.lrs) // 20)  # over a window: batch-to-batch wiggles at tiny rates are not a descent
        if end - start <= 2 * w:
            return float(self.lrs[start])
        loss, log_lr = self.smoothed[start:end], np.log(self.lrs[start:end])
        slope = (loss[2 * w:] - loss[:-2 * w]) / (log_lr[2 * w:] - log_lr[:-2 * w])
        return float(self.lrs[start + w + int(np.argmin(slope))])

    @property
    def suggestion(self) -> float:
        """fast.ai's rule of thumb: a tenth of the rate at the minimum, still well inside the
        falling region and steadier from run to run than the steepest point; never below the
        tested range (where the loss never fell, the lowest rate tested)."""
        return max(self.minimum / 10, float(self.lrs[0]))

    @property
    def fell(self) -> bool:
        """Whether the loss fell at all: its minimum lies past the first tenth of the rates tried."""
        return int(np.argmin(self.smoothed)) > len(self.lrs) // 10


def range_test(net: torch.nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer, prepare: Callable,
               dev: Device, task: Task, start: float = 1e-7, end: float = 10.0, steps: int = 100,
               beta: float = 0.98, label_smoothing: float = 0.0) -> RangeTest:
    """Train `net` on `batches` (cycled if too few) with the rate growing geometrically from
    `start` to `end` over `steps` steps; then restore its weights, buffers and `optimizer`."""
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict())
    top = max(g["peak_lr"] for g in optimizer.param_groups)
    scaler = scaler_for(dev)
    lrs, losses, smoothed, avg, best, diverged = [], [], [], 0.0, math.inf, False
    try:
        for i, (x, y) in enumerate(_cycle(batches, steps)):
            lr = start * (end / start) ** (i / max(steps - 1, 1))
            for g in optimizer.param_groups:
                g["lr"] = lr * g["peak_lr"] / top
            loss = train_step(net, optimizer, scaler, prepare(x), y.to(dev.device), dev, task, label_smoothing)
            value = float(np.mean(dev.group.gather(loss.item())))  # all ranks: one curve, one decision
            avg = beta * avg + (1 - beta) * value
            debiased = avg / (1 - beta ** (i + 1))  # early averages lean towards the 0 they started from
            lrs.append(lr), losses.append(value), smoothed.append(debiased)
            best = min(best, debiased)
            if not math.isfinite(debiased) or debiased > 4 * best:
                diverged = True
                break
    finally:
        net.load_state_dict(saved_net)
        optimizer.load_state_dict(saved_opt)
    return RangeTest(np.array(lrs), np.array(losses), np.array(smoothed), diverged)


def _cycle(batches: Iterable, steps: int):
    n = 0
    while n < steps:
        empty = True
        for batch in batches:
            empty = False
            yield batch
            n += 1
            if n == steps:
                return
        if empty:
            return


def plot(result: RangeTest, path: Path, title: str) -> None:
    """Loss against learning rate (log scale), the suggestion and the steepest point marked."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.losses, color="0.8", lw=1, label="batch loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    for lr, style, name in ((result.suggestion, "C3", "suggestion (minimum / 10)"),
                            (result.steepest, "C2", "steepest descent")):
        ax.axvline(lr, color=style, ls="--", lw=1.2, label=f"{name}: {lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (fastest layer group)")
    ax.set_ylabel("training loss")
    low, high = np.nanmin(result.smoothed), result.smoothed[0]
    ax.set_ylim(low - 0.1 * (high - low + 1e-9), max(high, low) * 1.5 + 1e-9)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
