"""What reading one image costs beyond OpenCV's decode: the truncation check on its bytes and the
capture of what the C decoders print (vision/decode.py), per image, on JPEGs written here.

    python benchmarks/decode_cost.py [--images 500] [--size 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.vision.decode import _cut_jpeg, _quietly, load_rgb


def per_image(fn, paths: list[Path], repeats: int = 3) -> float:
    """The best of `repeats` passes, in milliseconds an image."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, time.perf_counter() - t0)
    return 1000 * best / len(paths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(args.images):
            img = cv2.GaussianBlur(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8), (9, 9), 3)
            paths.append(Path(tmp) / f"{i}.jpg")
            cv2.imwrite(str(paths[-1]), img)

        def plain(p):
            return cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_COLOR)

        def checked(p):
            data = p.read_bytes()
            _cut_jpeg(data)
            return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

        def captured(p):
            return _quietly(cv2.imdecode, np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_COLOR)

        rows = [("imdecode alone", per_image(plain, paths)), ("+ truncation check", per_image(checked, paths)),
                ("+ stderr capture", per_image(captured, paths)), ("load_rgb (both, and RGB)", per_image(load_rgb, paths))]
    print(f"{args.images} JPEGs at {args.size} px, ms an image (best of 3 passes):")
    for name, ms in rows:
        print(f"  {name:<26} {ms:.3f}")


if __name__ == "__main__":
    main()
