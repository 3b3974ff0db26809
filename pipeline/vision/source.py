"""Images as a run's data (stages/source.py's protocol): the decoded training and test images
(images.py), the same for every fold; timm models; predictions over the TTA views."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.recipe import Recipe
from pipeline.training.models import create_model
from pipeline.training.tasks import Task
from pipeline.vision.images import ImageCache
from pipeline.vision.inputs import Images
from pipeline.vision.predict import load_checkpoint, predict_views


@dataclass
class ImageSource:
    train_images: ImageCache
    test_images: ImageCache
    symmetry: str = "hflip"
    kind = "images"

    def prepare(self, recipe: Recipe) -> None:
        self.train_images.prepare(sorted({p.size for p in recipe.phases}))
        self.test_images.prepare([recipe.phases[-1].size])  # a corrupt test image is said now, not after training

    def inputs(self, rows: np.ndarray, fold: str = "") -> Images:
        return Images(self.train_images, self.symmetry)

    def model(self, recipe: Recipe, outputs: int, inputs: Images) -> torch.nn.Module:
        return create_model(recipe.arch, outputs, recipe.weights)

    def load(self, path: Path, inputs: Images, dev: Device) -> tuple[torch.nn.Module, dict]:
        return load_checkpoint(path, dev)

    def predict(self, model, ckpt: dict, inputs: Images, rows: np.ndarray | None, recipe: Recipe, dev: Device,
                task: Task, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities over the TTA views, those of the plain view) for the training images at
        `rows`, or every test image (None)."""
        images = (self.test_images if rows is None else self.train_images)[ckpt["size"]]
        return predict_views(model, images, recipe.tta, dev, recipe.batch_size * 2, desc, task, rows=rows)
