"""Images as a kind of data the trainer takes (inputs.py): the decoded images at each phase's
size (images.py), augmented in the loader (albumentations) and, where the device does them, by
flips on the device; a batch of uint8 images becomes the model's normalised input there."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.recipe import Phase, Recipe
from pipeline.training.models import normalization
from pipeline.vision.transforms import ImageDataset, random_flips, to_input, train_augment


@dataclass
class Images:
    images: Mapping[int, np.ndarray]  # size -> uint8 [N, size, size, 3]: an ImageCache, or a dict of arrays
    symmetry: str = "hflip"           # the flips that keep a label (transforms.SYMMETRIES)

    def __getitem__(self, size: int) -> np.ndarray:
        return self.images[size]

    def dataset(self, rows: np.ndarray, labels: np.ndarray | None, phase: Phase, recipe: Recipe, dev: Device,
                augment: int | None = None) -> torch.utils.data.Dataset:
        if augment is None:
            return ImageDataset(self.images[phase.size], labels, rows=rows)
        transform = train_augment(augment, self.symmetry, phase.size, recipe.random_crop,
                                  flips=not dev.flips_on_device)
        return ImageDataset(self.images[phase.size], labels, transform, rows=rows)

    def placer(self, model: torch.nn.Module, dev: Device) -> Callable[..., torch.Tensor]:
        dev.place(model)
        mean, std = normalization(model)
        return lambda x, flips=None: to_input(x, mean, std, dev.device, dev.channels_last, flips)

    def on_device(self, prepare: Callable[..., torch.Tensor], seed: int, dev: Device) -> Callable[..., torch.Tensor]:
        if not dev.flips_on_device:
            return prepare
        flips = random_flips(self.symmetry, seed)
        return lambda x: prepare(x, flips)
