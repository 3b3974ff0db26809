"""Images as a run's data (stages/source.py's protocol): the decoded training and test images
(images.py), the same for every fold; timm models; predictions over the TTA views. A test image
that cannot be read keeps its row, predicted from the training labels alone (`prior`)."""
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


def prior(task: Task, targets: np.ndarray, classes: list[str] | None) -> np.ndarray:
    """The prediction for an example seen by no model, from the training targets alone: each
    class's share (a classifier), each tag's base rate (multi-label: its thresholds decide as
    for any row), or the mean target (a regression, in the units the model predicts)."""
    if task.name == "classification":
        return (np.bincount(targets, minlength=len(classes)) / len(targets)).astype(np.float32)
    return np.asarray(targets, np.float32).mean(0)


@dataclass
class ImageSource:
    train_images: ImageCache
    test_images: ImageCache
    symmetry: str = "hflip"
    test_prior: np.ndarray | None = None  # what an unreadable test image's row predicts (`prior`)
    kind = "images"

    def prepare(self, recipe: Recipe) -> None:
        # test images first: a notice on unreadable ones comes before any error on the training images
        self.test_images.prepare([recipe.phases[-1].size])
        self.train_images.prepare(sorted({p.size for p in recipe.phases}))

    def inputs(self, rows: np.ndarray, fold: str = "") -> Images:
        return Images(self.train_images, self.symmetry)

    def model(self, recipe: Recipe, outputs: int, inputs: Images) -> torch.nn.Module:
        return create_model(recipe.arch, outputs, recipe.weights)

    def load(self, path: Path, inputs: Images, dev: Device) -> tuple[torch.nn.Module, dict]:
        return load_checkpoint(path, dev)

    def predict(self, model, ckpt: dict, inputs: Images, rows: np.ndarray | None, recipe: Recipe, dev: Device,
                task: Task, desc: str) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities over the TTA views, those of the plain view) for the training images at
        `rows`, or every test image (None): an unreadable one's placeholder row is not predicted,
        its predictions are `test_prior` in both."""
        size = ckpt["size"]
        if rows is not None:
            return predict_views(model, self.train_images[size], recipe.tta, dev, recipe.batch_size * 2, desc, task,
                                 rows=rows)
        unreadable = [at for at, _, _ in self.test_images.unreadable(size)]
        if not unreadable:
            return predict_views(model, self.test_images[size], recipe.tta, dev, recipe.batch_size * 2, desc, task)
        readable = np.setdiff1d(np.arange(len(self.test_images)), unreadable)
        predicted = predict_views(model, self.test_images[size], recipe.tta, dev, recipe.batch_size * 2, desc, task,
                                  rows=readable)
        return tuple(self._with_prior(p, readable) for p in predicted)

    def _with_prior(self, predicted: np.ndarray, readable: np.ndarray) -> np.ndarray:
        """Every test image's predictions: `predicted` at the `readable` rows, test_prior elsewhere."""
        out = np.empty((len(self.test_images), *self.test_prior.shape), np.float32)
        out[:] = self.test_prior
        if len(readable):
            out[readable] = predicted
        return out
