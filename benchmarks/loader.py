"""What one loader worker delivers: images/second through the training dataset (read, augment,
collate) at each size, with the recipe's augmentation, without its flips and quarter turns (what
would remain if those moved to the GPU), and with none. Divide a GPU's images/second by the
first column to get the workers it needs.

    python benchmarks/loader.py --sizes 128 224 --symmetry dihedral

One thread, one process: the figure is per worker. Record results in RESULTS.md."""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.vision.transforms import ImageDataset, train_augment  # noqa: E402


def images_per_second(ds, batch: int, batches: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch, shuffle=True, drop_last=True, num_workers=0)
    it, t0 = iter(loader), time.perf_counter()
    for _ in range(batches):
        next(it)
    return batch * batches / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    ap.add_argument("--symmetry", default="dihedral")
    ap.add_argument("--random-crop", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| size | augmented img/s | without flips and turns | no augmentation | flips' share |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.batch * args.batches, size, size, 3), dtype=np.uint8)
        labels = np.zeros(len(images), np.int64)
        full = train_augment(0, args.symmetry, size, args.random_crop)
        unflipped = A.Compose([t for t in full.transforms
                               if not isinstance(t, (A.HorizontalFlip, A.VerticalFlip, A.RandomRotate90))], seed=0)
        rates = [images_per_second(ImageDataset(images, labels, aug), args.batch, args.batches)
                 for aug in (full, unflipped, None)]
        share = 1 - rates[0] / rates[1]  # of the augmented time per image, what the flips take
        print(f"| {size} | {rates[0]:.0f} | {rates[1]:.0f} | {rates[2]:.0f} | {100 * share:.0f}% |")


if __name__ == "__main__":
    main()
