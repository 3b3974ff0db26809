"""Decode each image once and keep it resized for every size a recipe uses, in memory and on disk,
so an epoch is spent in the model rather than in PNG/JPEG decoding."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import PipelineError
from .files import atomic_path, files_fingerprint

cv2.setNumThreads(1)  # resizing small images: threads only contend with torch's


def decode(path: Path) -> np.ndarray:
    """RGB uint8 [H, W, 3], or a one-line error naming the file."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PipelineError(f"{path}: not a readable image (corrupt or not an image); "
                            f"replace or delete the file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    shrinking = img.shape[0] > size or img.shape[1] > size
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


class ImageCache:
    """Resized copies of one list of images: `cache[size]` is a uint8 array [N, size, size, 3]."""

    def __init__(self, paths: list[Path], cache_dir: Path | None = None, progress: str = "decode",
                 key: str | None = None):
        self.paths = [Path(p) for p in paths]
        self.cache_dir = cache_dir
        self.progress = progress
        # names the disk copies: a changed, added or removed file gives new ones
        self._key = key or (files_fingerprint(self.paths) if cache_dir else None)
        self._arrays: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, size: int) -> np.ndarray:
        if size not in self._arrays:
            self.prepare([size])
        return self._arrays[size]

    def _file(self, size: int) -> Path | None:
        return self.cache_dir / f"{self._key}-{size}px.npy" if self.cache_dir else None

    def prepare(self, sizes: list[int]) -> None:
        """Load each size from disk, or decode every image once and resize it to all missing sizes."""
        missing = []
        for s in dict.fromkeys(sizes):
            if s in self._arrays:
                continue
            f = self._file(s)
            if f is not None and f.exists():
                self._arrays[s] = np.load(f)
            else:
                missing.append(s)
        if not missing:
            return
        out = {s: np.empty((len(self.paths), s, s, 3), np.uint8) for s in missing}
        for i, p in enumerate(tqdm(self.paths, desc=f"{self.progress} {missing}px", leave=False)):
            img = decode(p)
            for s in missing:
                out[s][i] = resize(img, s)
        for s, arr in out.items():
            self._arrays[s] = arr
            f = self._file(s)
            if f is not None:
                with atomic_path(f) as tmp:
                    with open(tmp, "wb") as fh:
                        np.save(fh, arr)
