"""Training throughput: the shared trainer's `train_one_epoch` against a bare PyTorch loop on the
same model, image size, batch, threads and data (random uint8 images, augmented the same way).

    python benchmarks/bare_loop.py --arch efficientnet_lite0 --size 128 --batch 32 --steps 30

Prints images/second for each and the trainer's overhead in percent. Record results in RESULTS.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.models import create_model, layer_groups, normalization
from pipeline.recipe import Phase
from pipeline.device import Device
from pipeline.epochs import make_optimizer, train_one_epoch
from pipeline.transforms import ImageDataset, to_input, train_augment


def bare(model, loader, dev, mean, std):
    """The loop anyone would write: no schedule, no bookkeeping, no progress bar."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for x, y in loader:
        x = to_input(x, mean, std, dev.device, dev.channels_last)
        loss = F.cross_entropy(model(x), y.to(dev.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = Device.pick(args.device)
    n = args.batch * args.steps
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 12, n)
    ds = ImageDataset(images, labels, train_augment(0, "dihedral"))
    loader = torch.utils.data.DataLoader(ds, args.batch, shuffle=True, drop_last=True, num_workers=dev.workers)
    fmt = torch.channels_last if dev.channels_last else torch.preserve_format

    def fresh():
        torch.manual_seed(0)
        return create_model(args.arch, 12, "none").to(dev.device, memory_format=fmt)

    model = fresh()
    mean, std = normalization(model)
    phase = Phase(size=args.size, epochs=1, lr=1e-4)

    def ours():
        opt = make_optimizer(layer_groups(model), phase, 0.01)
        model.train()
        train_one_epoch(model, loader, opt, phase=phase, epoch=0, dev=dev, label_smoothing=0.0, desc="trainer",
                        prepare=lambda x: to_input(x, mean, std, dev.device, dev.channels_last))

    bare(model, loader, dev, mean, std)  # warm-up: allocator, oneDNN/cuDNN kernel selection
    results = {"bare": [], "trainer": []}
    for _ in range(args.repeats):  # interleaved so drift in machine load hits both alike
        for name, fn in (("bare", lambda: bare(model, loader, dev, mean, std)), ("trainer", ours)):
            if dev.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.device.type == "cuda":
                torch.cuda.synchronize()
            results[name].append(n / (time.perf_counter() - t0))
    b, t = np.median(results["bare"]), np.median(results["trainer"])
    print(f"{args.arch} {args.size}px batch {args.batch} threads {args.threads} on {dev.device}: "
          f"bare {b:.1f} img/s, trainer {t:.1f} img/s, trainer overhead {100 * (b - t) / b:+.1f}%")


if __name__ == "__main__":
    main()
