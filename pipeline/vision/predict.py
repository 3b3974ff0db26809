"""Inference with test-time augmentation: class (or tag) probabilities averaged over dihedral views."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.core.progress import bar as progress_bar
from pipeline.training.models import create_model, normalization
from pipeline.training.tasks import CLASSIFICATION, Task
from pipeline.vision.transforms import to_input, tta_views


def load_checkpoint(path: Path, dev: Device) -> tuple[torch.nn.Module, dict]:
    """The model a checkpoint holds, placed on `dev`, and the checkpoint."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = create_model(ckpt["arch"], ckpt["num_classes"], weights="none")
    model.load_state_dict(ckpt["model"])
    dev.place(model)
    return model.eval(), ckpt


@torch.inference_mode()
def predict_views(model, images: np.ndarray, tta: int, dev: Device, batch_size: int, desc: str = "predict",
                  task: Task = CLASSIFICATION, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities averaged over `tta` views, those of the plain view alone), each [N, C], for
    uint8 images [N, H, W, 3] (those at `rows` only, when given: read a batch at a time from a
    cache on disk); sigmoids of a multi-label model (its checkpoint says which), else softmax.
    Views are averaged as probabilities (not logits), as the ensembles built on them also are.
    With several ranks (dev.group), each predicts its share and all get the whole result."""
    mean, std = normalization(model)
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    rows = rows[dev.group.share(len(rows))]
    out, plain = [], []
    for i in progress_bar(range(0, len(rows), batch_size), desc, unit="batches"):
        x = to_input(torch.from_numpy(images[rows[i:i + batch_size]]), mean, std, dev.device, dev.channels_last)
        p = 0
        for j, view in enumerate(tta_views(x, tta)):
            with dev.autocast():
                q = task.predictions(model(view).float())
            if j == 0:
                plain.append(q.cpu().numpy())
            p = p + q
        out.append((p / tta).cpu().numpy())
    none = np.zeros((0,), np.float32)
    return (dev.group.joined(np.concatenate(out) if out else none),
            dev.group.joined(np.concatenate(plain) if plain else none))
