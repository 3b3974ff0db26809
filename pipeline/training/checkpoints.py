"""What a checkpoint holds, and writing one atomically, so a kill never leaves half a file; and
whether one that came some other way (a copy) loads."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.core.files import atomic_path
from pipeline.recipe import Recipe
from pipeline.training.tasks import MultiLabel, Task


def checkpoint(model, recipe: Recipe, row: dict, task: Task) -> dict:
    """What predicting needs: the weights, the architecture and image size they were trained at,
    and the task they learnt (tags: sigmoids; one class: softmax)."""
    return {"model": model.state_dict(), "arch": recipe.arch, "num_classes": model.num_classes,
            "task": task.name, "multilabel": isinstance(task, MultiLabel), "size": row["size"],
            "phase": row["phase"], "epoch": row["epoch"], "history": row}


def save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def unloadable(path: Path) -> str | None:
    """Why the checkpoint at `path` does not load (a copy cut off, a full disk), or None when it
    does. Memory-mapped: its tensors are not read, so checking a fold's checkpoints costs little."""
    try:
        torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:80]}"
    return None


def snapshot_name(phase_index: int, epoch: int) -> str:
    return f"phase{phase_index + 1}-epoch{epoch + 1}.pt"
