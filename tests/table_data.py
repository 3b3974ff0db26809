"""Tiny tables for the table tests: `rossmann` cuts a few stores' last weeks out of the shared
copy of the real Rossmann data (rossmann_data.py; skipped where there is none),
`shop` makes up a small dated table of its own, and `tiny_recipe` is a table recipe that trains in
a second or two on a CPU."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.recipe import Phase, Recipe

from rossmann_data import REAL, real_slice


def tiny_recipe(**changes) -> Recipe:
    """A small network, two time-ordered folds of which the last trains, one short phase."""
    settings = dict(arch="embeddings-32-16", weights="none", batch_size=64, tta=1, split="time", folds=2,
                    train_folds=(1,), phases=(Phase(epochs=1, lr=3e-3),))
    return Recipe(**{**settings, **changes})


def rossmann(root: Path, days: int = 35, test_days: int = 7) -> Path:
    """A few stores' last weeks of the shared Rossmann data (rossmann_data.real_slice), skipped
    where there is none."""
    if REAL is None:
        pytest.skip("needs shared/datasets/rossmann-store-sales")
    return real_slice(root, days, test_days, stores=(1, 2, 3, 12, 13))


def shop(root: Path, days: int = 40, test_days: int = 5, seed: int = 0) -> Path:
    """A made-up dated table: four shops' daily takings (by shop, weekday, offer and price), its
    last `test_days` days as the test with an id column, and a sample submission."""
    rng = np.random.default_rng(seed)
    grid = pd.MultiIndex.from_product([pd.date_range("2024-03-01", periods=days + test_days), ["a", "b", "c", "d"]],
                                      names=["day", "shop"]).to_frame(index=False)
    grid["offer"] = rng.integers(0, 2, len(grid))
    grid["price"] = rng.uniform(1, 5, len(grid)).round(2)
    grid.loc[rng.random(len(grid)) < 0.1, "price"] = np.nan
    level = grid["shop"].map({"a": 100.0, "b": 200.0, "c": 300.0, "d": 400.0})
    grid["takings"] = (level * (1 + 0.5 * grid["offer"]) * (1 + 0.05 * grid["day"].dt.dayofweek)).round()
    grid["day"] = grid["day"].dt.strftime("%Y-%m-%d")
    test = grid.index >= days * 4
    root.mkdir(parents=True, exist_ok=True)
    grid[~test].to_csv(root / "train.csv", index=False)
    ids = [f"r{i}" for i in range(test.sum())]
    grid[test].drop(columns="takings").assign(row_id=ids).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"row_id": ids, "takings": 0}).to_csv(root / "sample_submission.csv", index=False)
    return root
