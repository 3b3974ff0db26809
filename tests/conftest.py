"""Tiny data written by the tests themselves, and recipes shrunk to run in seconds on a CPU."""
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.recipe import Recipe
from pipeline.training.folds import FoldData
from pipeline.training.tasks import CLASSIFICATION
from pipeline.vision.images import ImageCache
from pipeline.vision.inputs import Images

# No test reaches Kaggle. The kaggle client reads its endpoint when imported, so it is fixed here,
# before any import: http://localhost through a proxy on a closed port (tests/kaggle_standin.py
# replaces the proxy with a stand-in server), and a config folder with no credentials in it.
os.environ.update(KAGGLE_API_ENVIRONMENT="LOCALHOST", KAGGLE_CONFIG_DIR=tempfile.mkdtemp(prefix="kaggle-config-"),
                  HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "KAGGLE_USERNAME", "KAGGLE_KEY",
             "KAGGLE_API_TOKEN", "KAGGLE_KERNEL_RUN_TYPE"):
    os.environ.pop(name, None)

PLANT_CLASSES = [
    "Black-grass", "Charlock", "Cleavers", "Common Chickweed", "Common wheat", "Fat Hen",
    "Loose Silky-bent", "Maize", "Scentless Mayweed", "Shepherds Purse",
    "Small-flowered Cranesbill", "Sugar beet",
]


def write_image(path: Path, seed: int, size: int = 24) -> None:
    """A small random colour image whose mean brightness depends on `seed % 12`, so classes differ."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8) + np.uint8(15 * (seed % 12))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def tiny_data(tmp_path, n=24) -> FoldData:
    """24 tiny images in 3 classes, every fourth one for validation."""
    paths = [tmp_path / "img" / f"{i}.png" for i in range(n)]
    for i, p in enumerate(paths):
        write_image(p, seed=i, size=20)
    labels = np.arange(n) % 3
    return FoldData(inputs=Images(ImageCache(paths), "dihedral"), labels=labels,
                    train_idx=np.flatnonzero(np.arange(n) % 4 != 0), valid_idx=np.flatnonzero(np.arange(n) % 4 == 0),
                    task=CLASSIFICATION)


def make_plant_data(root: Path, per_class: int = 5, n_test: int = 7) -> Path:
    """plant-seedlings' Kaggle layout: train/<species>/<id>.png, test/<id>.png, sample_submission.csv."""
    for c, name in enumerate(PLANT_CLASSES):
        for i in range(per_class):
            write_image(root / "train" / name / f"{c:02d}{i:03d}ab.png", seed=c + 12 * i)
    names = [f"t{i:04d}.png" for i in range(n_test)]
    for i, n in enumerate(names):
        write_image(root / "test" / n, seed=1000 + i)
    pd.DataFrame({"file": names, "species": "Sugar beet"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def shrink(recipe: Recipe, size: int = 32) -> Recipe:
    """The same recipe (phases, freezing, rates, schedules) on timm's tiny test model, one epoch a phase."""
    # one epoch a phase; an SGDR phase keeps one whole cycle so its schedule stays valid, and an
    # SWA round two, so that it averages two sets of weights
    phases = tuple(replace(p, size=size, epochs=2 if p.swa else p.cycle_len if p.schedule == "sgdr" else 1)
                   for p in recipe.phases)
    return replace(recipe, arch="test_efficientnet", weights="none", phases=phases)


@pytest.fixture
def plant_data(tmp_path) -> Path:
    return make_plant_data(tmp_path / "plant-seedlings")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder with no data found anywhere else."""
    wd = tmp_path / "work"
    wd.mkdir()
    monkeypatch.chdir(wd)
    monkeypatch.delenv("PIPELINE_DATA", raising=False)
    monkeypatch.setenv("PIPELINE_KAGGLE_ROOT", str(tmp_path / "no-kaggle"))
    return wd


@pytest.fixture
def kaggle(tmp_path, monkeypatch, workdir):
    """The stand-in Kaggle on 127.0.0.1 (tests/kaggle_standin.py), and a user signed in to it."""
    from kaggle_standin import KEY, USER, Kaggle, serve
    state = Kaggle()
    server, proxy = serve(state)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no access token of the user's
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    yield state
    server.shutdown()
