"""Augmentations (albumentations, on uint8 images already at the phase's size) and TTA views."""
from __future__ import annotations

from typing import Callable

import albumentations as A
import numpy as np
import torch


# Which flips keep an image's label, declared by each competition:
#   "dihedral": any flip or 90-degree turn (seedlings from above, cells, satellite tiles)
#   "hflip":    mirror left-right only (photos of dogs, cats, street scenes)
#   "none":     no flips (digits, text: a mirrored 6 is not a 6)
SYMMETRIES = {"dihedral": 8, "hflip": 2, "none": 1}  # and the TTA views each allows


def train_augment(seed: int, symmetry: str = "hflip", size: int | None = None, random_crop: float = 0.0,
                  flips: bool = True) -> A.Compose:
    """Label-preserving flips, small rotations, scale, shift and lighting, on images cached at
    the phase's `size`. With `random_crop` (photos), scale and shift come from a random-resized
    crop instead: at least that share of the image's area, 3:4 to 4:3, resized back to `size`.
    `flips=False` leaves the flips and quarter turns to `random_flips` on the device. (Every
    transform here has a distribution that flips leave unchanged, so the order doesn't matter.)"""
    if random_crop:
        framing = [A.RandomResizedCrop(size=(size, size), scale=(random_crop, 1.0), ratio=(3 / 4, 4 / 3)),
                   A.Affine(rotate=(-10, 10), border_mode=0, p=0.75)]  # cv2.BORDER_CONSTANT
    else:
        framing = [A.Affine(rotate=(-20, 20), scale=(0.9, 1.15), translate_percent=(-0.05, 0.05),
                            border_mode=0, p=0.75)]
    turns = [
        A.HorizontalFlip(p=0.5 if symmetry != "none" else 0.0),
        A.VerticalFlip(p=0.5 if symmetry == "dihedral" else 0.0),
        A.RandomRotate90(p=0.5 if symmetry == "dihedral" else 0.0),
    ] if flips else []
    return A.Compose([
        *turns,
        *framing,
        A.RandomBrightnessContrast(0.2, 0.2, p=0.5),
    ], seed=seed)


class ImageDataset(torch.utils.data.Dataset):
    """uint8 HWC images (and labels) from an array; normalisation happens on the device, batched.
    `rows` are the positions in `images` (and `labels`) it holds, all of them if None: indexing
    through them, rather than copying a subset, leaves a cache on disk where it is."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, augment=None,
                 rows: np.ndarray | None = None):
        self.images, self.labels, self.augment = images, labels, augment
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        r = self.rows[i]
        img = self.images[r]
        if self.augment is not None:
            img = self.augment(image=img)["image"]
        x = torch.from_numpy(np.ascontiguousarray(img))
        return (x, self.labels[r]) if self.labels is not None else x  # (collated into a tensor)


def random_flips(symmetry: str, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Each image of a uint8 [B, H, W, C] batch, where it lies (a GPU), flipped at random as
    train_augment would: left-right for "hflip"; for "dihedral" also up-down and transposed (the 8
    views, a quarter turn included). On a GPU, the loader workers are spared about a third of
    their time for dihedral flips at 128 and 224 px (benchmarks/loader.py).
    The draws come from a generator seeded by `seed`, on the CPU: the same on any device."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
    axes = {"none": 0, "hflip": 1, "dihedral": 3}[symmetry]

    def flip(x: torch.Tensor) -> torch.Tensor:
        draws = (torch.rand(len(x), axes, generator=gen) < 0.5).to(x.device).view(len(x), axes, 1, 1, 1)
        for i, turn in enumerate((lambda v: v.flip(2), lambda v: v.flip(1), lambda v: v.transpose(1, 2))[:axes]):
            x = torch.where(draws[:, i], turn(x), x)
        return x
    return flip


def to_input(batch: torch.Tensor, mean, std, device: torch.device, channels_last: bool,
             flips: Callable | None = None) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> normalised float [B, 3, H, W] on `device`, `flips` applied there first."""
    x = batch.to(device, non_blocking=True)
    if flips is not None:
        x = flips(x)
    x = x.permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()


def tta_views(x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """The first n of the 8 dihedral views of a [B, C, H, W] batch: plain, hflip, vflip, both,
    then the same four transposed. n never exceeds what the competition's symmetry allows."""
    views = [x, x.flip(3), x.flip(2), x.flip(2, 3)]
    views += [v.transpose(2, 3) for v in views]
    return views[:n]
