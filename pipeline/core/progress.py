"""Progress of the long loops (an epoch's batches, precomputing activations, decoding images,
predicting): tqdm's bars in a terminal. Written to a file or a Kaggle kernel's log, a bar's `\\r`
redraws pile up into thousands of lines and the next printed line lands on a bar's line, so
there a loop prints a plain line instead, at most one every `SECONDS`.

TQDM_DISABLE (any value but empty, as tqdm reads it) silences both; distributed.launch sets it on
every rank but rank 0. It is read at each bar: tqdm itself reads it only once, when imported."""
from __future__ import annotations

import os
import sys
import time
from typing import Iterable

from tqdm import tqdm

from pipeline import PipelineError

SECONDS = 30.0  # between two plain lines of one loop; PIPELINE_PROGRESS_SECONDS overrides it


def bar(iterable: Iterable | None = None, desc: str = "", *, total: int | None = None, initial: int = 0,
        unit: str = "it", **tqdm_args):
    """tqdm(iterable, desc, ...) when stderr is a terminal, else a `Lines` with the same use:
    iterate it, or update(n) and close(); set_postfix(...). `unit` names what is counted in the
    plain lines (tqdm's bars keep their own "it")."""
    silent = bool(os.environ.get("TQDM_DISABLE"))
    if getattr(sys.stderr, "isatty", lambda: False)():
        return tqdm(iterable, desc=desc, total=total, initial=initial, leave=False, disable=silent, **tqdm_args)
    return Lines(iterable, desc, total=total, initial=initial, unit=unit, every=interval(), silent=silent)


def interval() -> float:
    """Seconds between two plain lines of one loop: SECONDS, or PIPELINE_PROGRESS_SECONDS (0: every update)."""
    text = os.environ.get("PIPELINE_PROGRESS_SECONDS")
    if text is None:
        return SECONDS
    try:
        return float(text)
    except ValueError:
        raise PipelineError(f"PIPELINE_PROGRESS_SECONDS={text!r}: give the seconds between progress lines, "
                            f"e.g. 30") from None


class Lines:
    """A loop's progress as whole lines on stderr ("  predict: 40/120 batches, 31s"), one at most
    every `every` seconds (0: at every update), none when the loop is shorter: the trainer already
    prints a line per epoch."""

    def __init__(self, iterable: Iterable | None, desc: str, *, total: int | None, initial: int, unit: str,
                 every: float, silent: bool):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.n, self.unit = iterable, desc, total, initial, unit
        self.every, self.silent, self.postfix = every, silent, ""
        self.start = self.last = time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)  # counted once the loop's body is done with it, as tqdm counts

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.silent or now - self.last < self.every:
            return
        self.last = now
        of = f"/{self.total}" if self.total is not None else ""
        line = f"  {self.desc}: {self.n}{of} {self.unit}, {now - self.start:.0f}s{self.postfix}"
        sys.stdout.flush()  # the log's lines printed so far come first, each whole, when both go to one file
        print(line, file=sys.stderr, flush=True)

    def set_postfix(self, **values) -> None:
        self.postfix = "".join(f", {k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass  # nothing to clear: every line is already whole
