"""Rossmann-shaped data folders for the table tests: train.csv, test.csv, store.csv and
sample_submission.csv with Kaggle's columns. `real_slice` cuts a few stores' last
weeks out of the shared copy of the real data (the test period: the days after the training rows,
their Sales held back); `made_up` writes the same shape from a seeded generator, for tests that
must run anywhere. `definition` writes a competition folder with rossmann's definition and a
recipe small enough for a CPU test."""
from pathlib import Path

import numpy as np
import pandas as pd

# ../shared/datasets beside the checkout (tests/test_slow.py's SHARED), or beside a folder above
# it (a git worktree's checkout lies deeper); None where there is none
REAL = next((p / "shared" / "datasets" / "rossmann-store-sales" for p in Path(__file__).resolve().parents[1:]
             if (p / "shared" / "datasets" / "rossmann-store-sales").is_dir()), None)
COMPETITION = Path(__file__).resolve().parents[1] / "competitions" / "rossmann-store-sales" / "competition.py"

# store.csv's rows for six stores as Kaggle has them: every store type, Promo2 or not with its
# three intervals, competition dates missing (12, 13, 19) and a missing distance (291)
STORES = [1, 2, 12, 13, 19, 291]
STORE_CSV = '''"Store","StoreType","Assortment","CompetitionDistance","CompetitionOpenSinceMonth","CompetitionOpenSinceYear","Promo2","Promo2SinceWeek","Promo2SinceYear","PromoInterval"
1,"c","a",1270,9,2008,0,,,""
2,"a","a",570,11,2007,1,13,2010,"Jan,Apr,Jul,Oct"
12,"a","c",1070,,,1,13,2010,"Jan,Apr,Jul,Oct"
13,"d","a",310,,,1,45,2009,"Feb,May,Aug,Nov"
19,"a","c",3240,,,1,22,2011,"Mar,Jun,Sept,Dec"
291,"d","a",,,,0,,,""
'''
TRAIN_COLUMNS = ["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo", "StateHoliday", "SchoolHoliday"]


def real_slice(root: Path, days: int = 120, test_days: int = 14, stores=STORES) -> Path:
    """`stores`' last `days + test_days` days of the shared train.csv: the first `days` as
    train.csv, the last `test_days` as test.csv (Sales and Customers dropped, an Id added)."""
    rows = pd.read_csv(REAL / "train.csv", dtype={"StateHoliday": str})
    rows = rows[rows["Store"].isin(stores)]
    head, *lines = (REAL / "store.csv").read_text().splitlines()
    store = "\n".join([head, *(line for line in lines if int(line.split(",")[0]) in stores)]) + "\n"
    return _write(root, rows, store, days, test_days)


def made_up(root: Path, days: int = 60, test_days: int = 7, seed: int = 0) -> Path:
    """The same files for STORES over `days + test_days` days from 2015-03-01: closed on Sundays
    and state holidays, a promo every other week, sales by store, weekday and promo."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2015-03-01", periods=days + test_days)
    grid = pd.MultiIndex.from_product([dates, STORES], names=["Date", "Store"]).to_frame(index=False)
    d = grid["Date"]
    holiday = d.isin(pd.to_datetime(["2015-04-03", "2015-04-06", "2015-05-01"]))
    grid["DayOfWeek"] = d.dt.day_of_week + 1
    grid["Open"] = ((grid["DayOfWeek"] != 7) & ~holiday).astype(int)
    grid["Promo"] = ((d.dt.isocalendar().week.astype(int) % 2 == 0) & (grid["DayOfWeek"] <= 5)).astype(int)
    grid["StateHoliday"] = np.where(holiday, "a", "0")
    grid["SchoolHoliday"] = d.between("2015-03-30", "2015-04-10").astype(int)
    base = grid["Store"].map(dict(zip(STORES, [5000, 4000, 7000, 3000, 6000, 9000])))
    sales = base * (1 + 0.3 * grid["Promo"]) * (1.2 - 0.05 * grid["DayOfWeek"]) * rng.uniform(0.9, 1.1, len(grid))
    grid["Sales"] = (sales * grid["Open"]).round().astype(int)
    grid["Customers"] = (grid["Sales"] / 9).round().astype(int)
    grid["Date"] = d.dt.strftime("%Y-%m-%d")
    return _write(root, grid, STORE_CSV, days, test_days)


def _write(root: Path, rows: pd.DataFrame, store: str, days: int, test_days: int) -> Path:
    """Kaggle's files from rows of train.csv's columns: the last `test_days` days become the
    test (newest first, as Kaggle orders both files)."""
    root.mkdir(parents=True, exist_ok=True)
    dates = sorted(rows["Date"].unique())[-(days + test_days):]
    rows = rows[rows["Date"].isin(dates)].sort_values(["Date", "Store"], ascending=[False, True])
    test_dates = dates[-test_days:]
    train, test = rows[~rows["Date"].isin(test_dates)], rows[rows["Date"].isin(test_dates)]
    train[TRAIN_COLUMNS].to_csv(root / "train.csv", index=False, quoting=2)  # (csv.QUOTE_NONNUMERIC, as Kaggle's)
    test = test.drop(columns=["Sales", "Customers"]).assign(Id=np.arange(1, len(test) + 1))
    test[["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"]].to_csv(
        root / "test.csv", index=False, quoting=2)
    pd.DataFrame({"Id": test["Id"], "Sales": 0}).to_csv(root / "sample_submission.csv", index=False, quoting=2)
    (root / "store.csv").write_text(store)
    return root


def definition(folder: Path, recipe: str = 'Recipe(arch="embeddings-32-16", weights="none", batch_size=64, tta=1, '
               'split="time", folds=2, train_folds=(1,), phases=(Phase(epochs=2, lr=3e-3),))',
               changes: dict[str, str] | None = None) -> Path:
    """<folder>/rossmann-store-sales/competition.py: rossmann's definition with `recipe` as its
    cpu and gpu recipes, and each of `changes` (old text -> new) made. Point
    PIPELINE_COMPETITIONS at `folder`."""
    source = COMPETITION.read_text()
    for old, new in (changes or {}).items():
        assert old in source, f"rossmann's definition no longer says {old!r}"
        source = source.replace(old, new)
    head, _, tail = source.partition("_recipe = Recipe(")
    assert tail, "rossmann's definition no longer names its recipe `_recipe`"
    tail = tail[tail.index("\nrecipes = "):]
    path = folder / "rossmann-store-sales" / "competition.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{head}_recipe = {recipe}{tail}")
    return folder
