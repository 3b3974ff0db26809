"""Tiny tables for the table tests: `rossmann` cuts a few stores' last weeks out of the shared
copy of the real Rossmann data (Kaggle's files, columns and quoting; skipped where there is none),
`shop` makes up a small dated table of its own, and `tiny_recipe` is a table recipe that trains in
a second or two on a CPU."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.recipe import Phase, Recipe

# ../shared/datasets beside the checkout, as tests/test_slow.py finds it, or beside a folder
# above it (a git worktree lies deeper)
SHARED = next((p / "shared" / "datasets" for p in Path(__file__).resolve().parents[1:]
               if (p / "shared" / "datasets").is_dir()), None)
ROSSMANN = SHARED / "rossmann-store-sales" if SHARED else None
STORES = (1, 2, 3, 12, 13)
PER_DAY = 1115  # train.csv has a row per store a day (most days), newest day first


def tiny_recipe(**changes) -> Recipe:
    """A small network, two time-ordered folds of which the last trains, one short phase."""
    settings = dict(arch="embeddings-32-16", weights="none", batch_size=64, tta=1, split="time", folds=2,
                    train_folds=(1,), phases=(Phase(epochs=1, lr=3e-3),))
    return Recipe(**{**settings, **changes})


def rossmann(root: Path, days: int = 35, test_days: int = 7) -> Path:
    """STORES over the last `days + test_days` days of the shared train.csv: the last `test_days`
    days become test.csv (Sales and Customers held back, an Id per row) and sample_submission.csv."""
    if ROSSMANN is None or not (ROSSMANN / "train.csv").is_file():
        pytest.skip("needs shared/datasets/rossmann-store-sales")
    rows = pd.read_csv(ROSSMANN / "train.csv", dtype={"StateHoliday": str}, nrows=PER_DAY * (days + test_days + 2))
    dates = sorted(rows["Date"].unique())[-(days + test_days):]
    rows = rows[rows["Store"].isin(STORES) & rows["Date"].isin(dates)]
    test = rows["Date"].isin(dates[-test_days:])
    root.mkdir(parents=True, exist_ok=True)
    rows[~test].to_csv(root / "train.csv", index=False, quoting=2)  # (csv.QUOTE_NONNUMERIC, as Kaggle's)
    ids = np.arange(1, test.sum() + 1)
    rows[test].drop(columns=["Sales", "Customers"]).assign(Id=ids)[
        ["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"]].to_csv(
        root / "test.csv", index=False, quoting=2)
    pd.DataFrame({"Id": ids, "Sales": 0}).to_csv(root / "sample_submission.csv", index=False, quoting=2)
    head, *lines = (ROSSMANN / "store.csv").read_text().splitlines()
    (root / "store.csv").write_text("\n".join([head, *(l for l in lines if int(l.split(",")[0]) in STORES)]) + "\n")
    return root


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
