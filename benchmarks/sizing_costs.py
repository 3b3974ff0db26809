"""The per-pixel seconds vision/sizing.py's cost model uses, measured on this machine through the
trainer's own path: one epoch of `train_one_epoch` with the early layers frozen (a starter's
fine-tuning phase) and with none, and `predict_views` with one view (activations, validation,
each TTA view). Random images, efficientnet_lite0 untrained (the speed is the weights'
shapes', not their values), batch 32, the median of the timed passes after a warm-up.

    TQDM_DISABLE=1 .venv/bin/python benchmarks/sizing_costs.py --sizes 128 224 --images 256

Prints each as images/s and as 1 / (images/s * 128**2), the form sizing.py's constants take.
Run it on a quiet machine: another busy process on 2 cores halves every number."""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.core.device import Device  # noqa: E402
from pipeline.recipe import Phase, Recipe  # noqa: E402
from pipeline.training.epochs import train_one_epoch  # noqa: E402
from pipeline.training.folds import FoldData  # noqa: E402
from pipeline.training.models import create_model  # noqa: E402
from pipeline.training.tasks import CLASSIFICATION  # noqa: E402
from pipeline.training.trainer import setup_phase  # noqa: E402
from pipeline.vision.inputs import Images  # noqa: E402
from pipeline.vision.predict import predict_views  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: the allocator, the first batches' shapes
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def rates(size: int, n: int, repeats: int, dev: Device) -> dict[str, float]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, n)
    data = FoldData(inputs=Images({size: images}, "hflip"), labels=labels, train_idx=np.arange(n),
                    valid_idx=np.arange(0), task=CLASSIFICATION)
    found = {}
    for name, frozen in (("train, early frozen", ("early",)), ("train, all", ())):
        torch.manual_seed(0)
        model = create_model("efficientnet_lite0", 2, "none")
        dev.place(model)
        recipe = Recipe(phases=(Phase(size=size, epochs=1, lr=1e-4, frozen=frozen),), random_crop=0.75)
        setup = setup_phase(model, recipe, 0, data, dev=dev)

        def epoch():
            setup.train_mode()
            train_one_epoch(setup.net, setup.loader(0), setup.optimizer, phase=setup.phase, epoch=0,
                            prepare=setup.train_prepare(0), dev=dev, task=data.task, label_smoothing=0.0, desc=name)
        found[name] = n / median_seconds(epoch, repeats)
    found["forward"] = n / median_seconds(lambda: predict_views(model, images, 1, dev, 64, "forward"), repeats)
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    dev = Device.pick("auto")
    print(f"{dev.device}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print("| size | what | images/s | seconds per pixel (1 / (images/s * 128**2)) |")
    print("|---|---|---|---|")
    for size in args.sizes:
        for name, rate in rates(size, args.images, args.repeats, dev).items():
            per_128 = rate * (size / 128) ** 2  # images/s at 128 px, if the cost goes with the pixels
            print(f"| {size} | {name} | {rate:.0f} | 1 / ({per_128:.0f} * 128**2) |", flush=True)


if __name__ == "__main__":
    main()
