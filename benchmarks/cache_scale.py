"""The decoded-image cache at Kaggle scale: a synthetic set of JPEGs of several aspect ratios,
cached at three recipe sizes, then one epoch's worth of augmented training batches streamed
from the cache on disk (the data path of an epoch, without the model).

    python benchmarks/cache_scale.py --images 100000 --sizes 128,192,256 --workers 2
    python benchmarks/cache_scale.py --images 20000 --sizes 128 --workers 1   # decode throughput, 1 process

Prints build time, images/s and peak RSS (this process and its worker processes), then the
epoch's time and peak RSS. Needs about (sum of size^2 x 3 bytes) per image of disk, 34 GB at
100k images and 128/192/256 px. Record results in RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.vision.images import ImageCache

SHAPES = [(256, 256), (256, 384), (384, 256), (256, 192), (300, 400)]  # (height, width)


def write_images(folder: Path, n: int) -> list[Path]:
    """n JPEGs, made once and kept: smooth random colour fields with a shape per image."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:06d}.jpg" for i in range(n)]
    rng = np.random.default_rng(0)
    for i, p in enumerate(paths):
        if p.exists():
            continue
        h, w = SHAPES[i % len(SHAPES)]
        small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        cv2.circle(img, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(10, 60)), (255, 255, 255), -1)
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


class WorkerPeak(threading.Thread):
    """The largest resident size of any process below this one (the decoding workers are children
    of multiprocessing's fork server, so getrusage's RUSAGE_CHILDREN never sees them), sampled."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_mb, self.running = 0.0, True
        self.start()

    def run(self):
        me = os.getpid()
        while self.running:
            parents, rss = {}, {}
            for d in Path("/proc").glob("[0-9]*"):
                try:
                    status = dict(l.split(":", 1) for l in (d / "status").read_text().splitlines() if ":" in l)
                    parents[int(d.name)] = int(status["PPid"])
                    rss[int(d.name)] = int(status.get("VmRSS", "0 kB").split()[0]) / 1024
                except (OSError, KeyError, ValueError):
                    continue
            for pid in rss:
                p = parents.get(pid)
                while p not in (None, 0, 1, me):
                    p = parents.get(p)
                if p == me:
                    self.peak_mb = max(self.peak_mb, rss[pid])
            time.sleep(0.5)


def resident() -> str:
    """Resident memory now, split as Linux accounts it: anonymous (the process's own) and
    file-backed (pages of mapped files, which the kernel drops whenever memory is needed)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    mb = {k: int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile")}
    return f"now {mb['RssAnon']:.0f} MB anonymous + {mb['RssFile']:.0f} MB of mapped file pages"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--sizes", default="128,192,256")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default="data/bench-cache", help="where the JPEGs and the cache go")
    ap.add_argument("--keep", action="store_true", help="keep the cache files (the JPEGs are always kept)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(args.dir)

    t0 = time.time()
    paths = write_images(root / "jpg", args.images)
    print(f"images: {len(paths)} JPEGs of {len(SHAPES)} shapes in {root / 'jpg'} ({time.time() - t0:.0f} s to write)")

    cache_dir = root / f"cache-{args.workers}w"
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache = ImageCache(paths, cache_dir, "decode", key="bench", workers=args.workers)
    t0, workers = time.time(), WorkerPeak()
    cache.prepare(sizes)
    took, workers.running = time.time() - t0, False
    print(f"build: {len(paths)} images x {sizes} px with {args.workers} process(es): {took:.0f} s, "
          f"{len(paths) / took:.0f} images/s; peak RSS {peak_mb(resource.RUSAGE_SELF):.0f} MB here, "
          f"{workers.peak_mb:.0f} MB the largest worker ({resident()}); "
          f"{sum(f.stat().st_size for f in cache_dir.glob('*.npy')) / 1e9:.1f} GB on disk")

    # imported only now: the decoding workers re-import this script, and need no torch
    import torch
    from pipeline.vision.transforms import ImageDataset, train_augment
    size = max(sizes)
    rows = np.flatnonzero(np.arange(len(paths)) % 5 != 0)  # a fold's training images: 80%
    ds = ImageDataset(cache[size], np.zeros(len(paths), np.int64), train_augment(0, "dihedral"), rows=rows)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=0,
                                         generator=torch.Generator().manual_seed(0))
    t0, seen = time.time(), 0
    for x, _ in loader:
        seen += len(x)
    took = time.time() - t0
    print(f"epoch: {seen} augmented {size} px images streamed from the cache on disk in {took:.0f} s "
          f"({seen / took:.0f} images/s); peak RSS {peak_mb(resource.RUSAGE_SELF):.0f} MB ({resident()})")
    if not args.keep:
        shutil.rmtree(cache_dir)


if __name__ == "__main__":
    main()
