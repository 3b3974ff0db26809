"""Fingerprints of the weights the trainer produces on tiny data, one line per recipe: plain,
staged (precompute, SGDR cycles, differential rates, progressive sizes; as fast.ai has BatchNorm, and
adapted before the head), lr="find", oversampling,
mining + SWA rounds, and mixup / cutmix with an EMA of the weights. A refactor that claims "training unchanged" must print the same lines.

    python benchmarks/weight_hashes.py

One thread, so that the numbers don't depend on the machine's core count. Record in RESULTS.md."""
from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.core.device import Device
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe, differential, mining_round, swa_round
from pipeline.training.folds import FoldData
from pipeline.training.models import create_model
from pipeline.training.tasks import CLASSIFICATION
from pipeline.training.trainer import fit
from pipeline.vision.images import ImageCache
from pipeline.vision.inputs import Images

torch.set_num_threads(1)


def tiny(root: Path, n: int = 36) -> FoldData:
    paths = [root / f"{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        rng = np.random.default_rng(i)
        cv2.imwrite(str(p), rng.integers(0, 60, (20, 20, 3), dtype=np.uint8) + np.uint8(15 * (i % 12)))
    labels = np.arange(n) % 3
    labels[::7] = 0  # class 0 the commonest, so oversampling changes the epochs
    return FoldData(inputs=Images(ImageCache(paths), "dihedral"), labels=labels, train_idx=np.flatnonzero(np.arange(n) % 4),
                    valid_idx=np.flatnonzero(np.arange(n) % 4 == 0), ids=np.array([str(i) for i in range(n)]),
                    classes=["a", "b", "c"], task=CLASSIFICATION)


BASE = dict(arch="test_efficientnet", weights="none", batch_size=6, seed=1)
RECIPES = {
    "plain": Recipe(**BASE, phases=(Phase(size=24, epochs=2, lr=1e-2),)),
    "staged": Recipe(**BASE, label_smoothing=0.1, batchnorm="batch", phases=(
        Phase(size=24, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True),
        Phase(size=20, epochs=3, lr=differential(4e-3), frozen=("early",), schedule="sgdr", cycle_len=1, cycle_mult=2),
        Phase(size=28, epochs=2, lr=differential(1e-3)))),
    # the same with its BatchNorm statistics recomputed on the fold before the head (issue 17)
    "adapted": Recipe(**{**BASE, "batchnorm": "adapt"}, label_smoothing=0.1, phases=(
        Phase(size=24, epochs=2, lr=1e-2, frozen=("early", "late"), precompute=True),
        Phase(size=20, epochs=3, lr=differential(4e-3), frozen=("early",), schedule="sgdr", cycle_len=1, cycle_mult=2),
        Phase(size=28, epochs=2, lr=differential(1e-3)))),
    "find": Recipe(**BASE, phases=(Phase(size=24, epochs=1, lr=1e-2),
                                   Phase(size=24, epochs=2, lr="find", frozen=("early",)))),
    "oversample": Recipe(**BASE, oversample="max", phases=(Phase(size=24, epochs=2, lr=1e-2),)),
    "rounds": Recipe(**BASE, phases=(Phase(size=24, epochs=1, lr=1e-2),
                                     mining_round(Phase(size=24, epochs=1, lr=1e-2), fraction=0.25, epochs=2),
                                     swa_round(Phase(size=24, epochs=1, lr=1e-2), epochs=3))),
    "mixed": Recipe(**BASE, mixup=0.4, cutmix=1.0, ema=0.9, random_crop=0.5, phases=(Phase(size=24, epochs=2, lr=1e-2),)),
}


def digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = tiny(Path(tmp))
        for name, recipe in RECIPES.items():
            torch.manual_seed(0)
            out = Path(tmp) / name
            model = create_model(recipe.arch, 3, recipe.weights)
            fit(model, recipe, data, accuracy, out, key="key", dev=Device.pick("cpu"),
                feature_cache={}, log=lambda *a: None)
            files = ["last.pt", "best.pt"] + [f for f in ["swa.pt", "ema.pt"] if (out / f).exists()]
            files += sorted(f"snapshots/{p.name}" for p in (out / "snapshots").glob("*.pt"))
            print(f"{name:<11}" + "  ".join(f"{f} {digest(out / f)}" for f in files))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
