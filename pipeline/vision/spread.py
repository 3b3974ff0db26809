"""Images nearly constant once decoded: a copy posterised to pixel values 0-2, or 12-bit scans
kept in 16 bits (the top byte nearly empty), decode without an error and train on black squares;
only a look at check/batch.png shows it. Said in one line, from a sample of the decoded images."""
from __future__ import annotations

import numpy as np

SPREAD = 2.0    # grey levels (0-255): the per-image standard deviation, averaged, below which
                # images are nearly constant (a photo: 40-70; the 0-2 copy: under 1)
BRIGHTEST = 8   # grey levels: the sample's brightest pixel below which the images are nearly black
SAMPLE = 64     # images looked at, evenly spaced through the data


def sample(images: np.ndarray, n: int = SAMPLE) -> np.ndarray:
    """`n` images evenly spaced through `images` (an ImageCache size: only they are read)."""
    return np.asarray(images[np.unique(np.linspace(0, len(images) - 1, min(n, len(images))).astype(int))])


def nearly_constant(images: np.ndarray, data_dir) -> str | None:
    """A one-line warning naming `data_dir` when the decoded `images` [N, H, W, 3] (a sample)
    barely vary; None when they look like pictures."""
    if not len(images):
        return None
    spread = float(images.reshape(len(images), -1).std(1, dtype=np.float32).mean())
    brightest = int(images.max())
    if spread >= SPREAD and brightest >= BRIGHTEST:
        return None
    return (f"{data_dir}: the training images are nearly constant once decoded (a sample of {len(images)}: pixel "
            f"standard deviation {spread:.1f} of 255 on average, brightest pixel {brightest}): posterised, "
            f"scaled to a few levels, or saved darker than they should be? Open a few, and look at the "
            f"labelled batch of `pipeline check`")
