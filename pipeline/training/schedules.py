"""Learning-rate and momentum schedules as pure functions of the step within a phase.

Each returns (lr multiplier, momentum or None); the trainer multiplies every layer group's peak
rate by the multiplier, so differential learning rates work with any schedule.
"""
from __future__ import annotations

import math

from pipeline.recipe import Phase, sgdr_cycle_epochs


def cos_between(start: float, end: float, t: float) -> float:
    """Cosine interpolation from start (t=0) to end (t=1)."""
    return end + (start - end) * (1 + math.cos(math.pi * t)) / 2


def one_cycle(t: float, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e5,
              moms: tuple[float, float, float] = (0.95, 0.85, 0.95)) -> tuple[float, float]:
    """fast.ai's 1cycle at fraction t of the phase: lr warms from 1/div to 1 and anneals to
    1/final_div; momentum moves the opposite way, low while the rate is high."""
    if t < pct_start:
        u = t / pct_start
        return cos_between(1 / div, 1.0, u), cos_between(moms[0], moms[1], u)
    u = (t - pct_start) / (1 - pct_start)
    return cos_between(1.0, 1 / final_div, u), cos_between(moms[1], moms[2], u)


def sgdr(epoch: float, cycle_len: int, cycle_mult: int, epochs: int) -> float:
    """Cosine annealing with warm restarts at fractional `epoch`: each cycle anneals 1 -> 0 and the
    next restarts at 1, cycle_mult times longer."""
    start = 0
    for n in sgdr_cycle_epochs(epochs, cycle_len, cycle_mult):
        if epoch < start + n:
            return cos_between(1.0, 0.0, (epoch - start) / n)
        start += n
    return 0.0


def lr_at(phase: Phase, step: int, steps_per_epoch: int) -> tuple[float, float | None]:
    """(lr multiplier, momentum or None) at optimizer step `step` of the phase."""
    total = phase.epochs * steps_per_epoch
    if phase.schedule == "1cycle":
        return one_cycle(step / total)
    if phase.schedule == "sgdr":
        return sgdr(step / steps_per_epoch, phase.cycle_len, phase.cycle_mult, phase.epochs), None
    return 1.0, None
