"""Several processes on torch.distributed, launched by torchrun (the launcher timm and everyone
else uses): one process per GPU, or several CPU processes on the gloo backend.

    torchrun --nproc_per_node 2 -m pipeline -- run plant-seedlings --parallel data
    torchrun --nproc_per_node 2 -m pipeline -- run plant-seedlings --parallel folds

(`--` keeps every pipeline option ours: torchrun's parser would take `--run` for its own
`--run-path`.) A `Group` is the processes that share a piece of work, and says which one this
is. Under `--parallel data` every rank trains each fold together (DistributedDataParallel) and
the Device carries the group, so loaders, validation and prediction split their images by
rank; under `--parallel folds` each rank trains whole folds alone and only the run's stages
are shared. Rank 0 writes every file; a rank that dies stops the others (torchrun ends them, and
a collective that waits on a dead rank fails after PIPELINE_DIST_TIMEOUT seconds)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from pipeline import PipelineError, stop_on_sigterm

MODES = ("data", "folds")
TIMEOUT = float(os.environ.get("PIPELINE_DIST_TIMEOUT", 1800))  # seconds a rank waits for the others


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def gather(self, obj: Any) -> list:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share(self, n: int) -> np.ndarray:
        """This rank's positions of range(n): contiguous, sizes differing by at most one, none
        twice (DistributedSampler pads with duplicates, which would be scored twice)."""
        return np.array_split(np.arange(n), self.world)[self.rank]

    def joined(self, part: np.ndarray) -> np.ndarray:
        """The ranks' results for their `share`s, put back in order."""
        parts = [p for p in self.gather(part) if len(p)]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """`fn()` run by rank 0 alone, its result (or its error, as one line) on every rank."""
        result, error = None, None
        if self.main:
            try:
                result = fn()
            except PipelineError as e:
                error = str(e)
        result, error = self.broadcast((result, error))
        if error is not None:
            raise PipelineError(error if self.main else f"(as rank 0 says) {error}")
        return result

    def agree(self, what: str, value: Any) -> None:
        """Stop, in one line, unless every rank holds the same `value`."""
        values = self.gather(value)
        odd = [r for r, v in enumerate(values) if v != values[0]]
        if odd:
            raise PipelineError(f"ranks disagree on {what}: rank {odd[0]} has {values[odd[0]]!r}, rank 0 "
                                f"{values[0]!r}; start every rank with the same command and the same data")


SINGLE = Group()


def launch(parallel: str | None, device: str) -> tuple[Group, str]:
    """This process's group and device from torchrun's environment (WORLD_SIZE, RANK,
    LOCAL_RANK): each rank its own GPU, or the CPU on gloo. One process: SINGLE."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        if parallel:
            raise PipelineError(f"--parallel {parallel} needs several processes: "
                                f"torchrun --nproc_per_node N -m pipeline -- run ...")
        return SINGLE, device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    cuda = device != "cpu" and torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if not dist.is_available() or not (dist.is_nccl_available() if cuda else dist.is_gloo_available()):
        raise PipelineError(f"torch.distributed's {backend} backend is not in this torch build "
                            f"({torch.__version__}); install a build with it, or run one process")
    if cuda:
        if local >= torch.cuda.device_count():
            raise PipelineError(f"rank {rank}: local rank {local}, but {torch.cuda.device_count()} GPU(s) "
                                f"visible; --nproc_per_node at most {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if rank:  # one progress bar, rank 0's (tqdm reads this at each bar)
        os.environ["TQDM_DISABLE"] = "1"
    # torchrun ends the other ranks with SIGTERM when one fails: stop as after Ctrl-C, in one line
    stop_on_sigterm()
    dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT))
    return Group(rank, world), device


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
