"""What `device.keep_freed_memory` buys on a CPU: prediction (4 TTA views, batches of 64 as the
predict stage has them) and training steps (batches of 32) of efficientnet_lite0 at 150 px,
random weights and images, in one process either
with glibc's default allocation or with freed memory kept. Run each setting in its own process
(the setting holds for the process's life), side by side:

    farm-bench -n 3 --timeout 900 --vs 'python benchmarks/cpu_allocator.py' \\
        -- python benchmarks/cpu_allocator.py --keep

Prints seconds and the process's page faults and system seconds for each part."""
from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipeline.core.device import Device, keep_freed_memory  # noqa: E402
from pipeline.vision.predict import predict_views  # noqa: E402


def timed(what: str, work) -> None:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{what}: {time.perf_counter() - t0:.1f} s, {r1.ru_minflt - r0.ru_minflt} page faults, "
          f"system {r1.ru_stime - r0.ru_stime:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep freed memory (what Device.pick does on a CPU)")
    ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    if args.keep:
        assert keep_freed_memory(), "not glibc"
    dev = Device(torch.device("cpu"), None, workers=0)  # Device.pick would keep freed memory itself
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_lite0", num_classes=12)
    dev.place(model)
    images = np.random.default_rng(0).integers(0, 256, (args.images, 150, 150, 3), dtype=np.uint8)
    timed(f"predict {args.images} images x 4 views", lambda: predict_views(model.eval(), images, 4, dev, 64))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(32, 3, 150, 150).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 12, (32,))

    def steps():
        for _ in range(args.steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    timed(f"train {args.steps} steps of 32", steps)


if __name__ == "__main__":
    main()
