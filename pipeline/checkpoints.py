"""What a checkpoint holds, and writing one atomically, so a kill never leaves half a file."""
from __future__ import annotations

from pathlib import Path

import torch

from .files import atomic_path
from .recipe import Recipe


def checkpoint(model, recipe: Recipe, row: dict, multilabel: bool) -> dict:
    """What predicting needs: the weights, the architecture and image size they were trained at,
    and whether the outputs are tags (sigmoids) or one class (softmax)."""
    return {"model": model.state_dict(), "arch": recipe.arch, "num_classes": model.num_classes,
            "multilabel": multilabel, "size": row["size"], "phase": row["phase"], "epoch": row["epoch"],
            "history": row}


def save(obj: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def snapshot_name(phase_index: int, epoch: int) -> str:
    return f"phase{phase_index + 1}-epoch{epoch + 1}.pt"
