"""Throughput of the shared trainer against a bare PyTorch loop on the same model, image size,
batch, threads and data (random uint8 images): training, and TTA inference.

    python benchmarks/bare_loop.py --arch efficientnet_lite0 --sizes 128 224 --batch 64 --steps 60 [--compile]

- bare training: the loop anyone would write: a DataLoader whose workers do all the augmentation
  (flips included), normalisation on the device, AdamW, no schedule, no bookkeeping.
- trainer training: one epoch of the trainer's own path: `setup_phase` (the seeded epoch loader,
  flips on the device where `Device` says so) and `train_one_epoch` (schedule, AMP, loss rows).
- TTA inference: `predict_views` against a plain loop over the same 8 views; images/s counts
  images, not views.

Prints a Markdown table: images/s, and the trainer's share of the bare loop's. The first pass of
each is a warm-up (allocator, cuDNN's choice of kernels, and with --compile the compiling, whose
seconds are printed). Record results in RESULTS.md."""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipeline.core.device import Device  # noqa: E402
from pipeline.recipe import Phase, Recipe  # noqa: E402
from pipeline.training.epochs import train_one_epoch  # noqa: E402
from pipeline.training.folds import FoldData  # noqa: E402
from pipeline.training.models import create_model, normalization  # noqa: E402
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import setup_phase  # noqa: E402
from pipeline.vision.inputs import Images
from pipeline.vision.predict import predict_views  # noqa: E402
from pipeline.vision.transforms import ImageDataset, to_input, train_augment, tta_views  # noqa: E402


def bare_train(model, loader, dev, mean, std):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for x, y in loader:
        x = to_input(x, mean, std, dev.device, dev.channels_last)
        with dev.autocast():
            loss = F.cross_entropy(model(x), y.to(dev.device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()


@torch.inference_mode()
def bare_tta(model, images, dev, mean, std, batch, views):
    model.eval()
    loader = torch.utils.data.DataLoader(ImageDataset(images), batch, num_workers=dev.workers,
                                         pin_memory=dev.device.type == "cuda")
    out = []
    for x in loader:
        x = to_input(x, mean, std, dev.device, dev.channels_last)
        with dev.autocast():
            out.append(sum(model(v).float().softmax(1) for v in tta_views(x, views)).cpu())
    return torch.cat(out)


def timed(fn, dev, repeats: int) -> tuple[float, list[float]]:
    """Seconds of the first (warm-up) call, and of each of `repeats` more."""
    times = []
    for _ in range(repeats + 1):
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def measure(args, size: int, dev: Device) -> str:
    n = args.batch * args.steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 12, n)
    torch.manual_seed(0)
    model = create_model(args.arch, 12, "none")
    mean, std = normalization(model)
    dev.place(model)  # (compiles in place with --compile)

    everything = train_augment(0, "dihedral", size)  # the bare loop's workers flip too
    bare_loader = torch.utils.data.DataLoader(ImageDataset(images, labels, everything), args.batch, shuffle=True,
                                              drop_last=True, num_workers=dev.workers,
                                              pin_memory=dev.device.type == "cuda")
    recipe = Recipe(phases=(Phase(size=size, epochs=1, lr=1e-4),), batch_size=args.batch, arch=args.arch)
    data = FoldData(inputs=Images({size: images}, "dihedral"), labels=labels, train_idx=np.arange(n), valid_idx=np.arange(0),
                    task=CLASSIFICATION)
    setup = setup_phase(model, recipe, 0, data, dev=dev)

    def trainer():
        setup.train_mode()
        train_one_epoch(setup.net, setup.loader(0), setup.optimizer, phase=setup.phase, epoch=0,
                        prepare=setup.train_prepare(0), dev=dev, task=data.task, label_smoothing=0.0, desc="trainer")

    tta_images = images[:args.batch * max(1, args.steps // 4)]
    runs = {
        "bare train": lambda: bare_train(model, bare_loader, dev, mean, std),
        "trainer train": trainer,
        "bare TTA": lambda: bare_tta(model, tta_images, dev, mean, std, args.batch * 2, args.views),
        "trainer TTA": lambda: predict_views(model, tta_images, args.views, dev, args.batch * 2, "tta"),
    }
    rates, warmup = {}, {}
    for name, fn in runs.items():
        warmup[name], times = timed(fn, dev, args.repeats)
        count = len(tta_images) if name.endswith("TTA") else n
        rates[name] = count / np.median(times)
    train, tta = rates["trainer train"] / rates["bare train"], rates["trainer TTA"] / rates["bare TTA"]
    first = max(warmup.values())
    return (f"| {args.arch} | {size} | {args.batch} | {'yes' if dev.compile else 'no'} | "
            f"{rates['bare train']:.0f} | {rates['trainer train']:.0f} | {train:.2f} | "
            f"{rates['bare TTA']:.0f} | {rates['trainer TTA']:.0f} | {tta:.2f} | {first:.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30, help="training batches per timed pass")
    ap.add_argument("--views", type=int, default=8, help="TTA views")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--header", action="store_true", help="print the table's header first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = Device.pick(args.device, args.compile)
    if args.header:
        print(f"{dev.device} ({torch.cuda.get_device_name() if dev.device.type == 'cuda' else f'{args.threads} threads'}), "
              f"AMP {dev.amp_dtype}, channels_last {dev.channels_last}, {dev.workers} loader workers, "
              f"flips on the device: {dev.flips_on_device}; images/s, median of {args.repeats}\n")
        print("| arch | size | batch | compile | bare train | trainer train | ratio | bare TTA | trainer TTA | ratio "
              "| warm-up s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        print(measure(args, size, dev), flush=True)


if __name__ == "__main__":
    main()
