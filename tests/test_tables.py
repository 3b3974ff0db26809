"""Tables: the features, the per-fold encoding, time-ordered folds, the entity-embeddings network
and its batches, on frames the tests make by hand; then Rossmann end to end through the CLI on a
slice of the real data (or, where the shared data is absent, made-up data of its shape)."""
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.core.files import read_json
from pipeline.metrics import rmspe
from pipeline.tables import layout as layouts, trees
from pipeline.tables.encoding import Encoding
from pipeline.tables.features import add_date_parts, add_events
from pipeline.tables.inputs import Rows
from pipeline.tables.layout import Table
from pipeline.tables.model import EntityEmbeddings, embedding_size
from pipeline.tables.source import TableSource
from pipeline.training.folds import time_folds, training_rows
from pipeline.training.models import layer_groups

import rossmann_data

NAN = np.nan


@pytest.mark.quick
def test_days_since_and_until_an_event_per_group_in_any_row_order():
    # store A: the event on days 2 and 5; store B: never (its "a"-less values are all "0" or missing)
    rows = [("A", d, "a" if d in (2, 5) else "0") for d in range(1, 7)] + [("B", 1, "0"), ("B", 2, None), ("B", 3, "0")]
    frame = pd.DataFrame(rows, columns=["Store", "day", "Holiday"]).sample(frac=1, random_state=0)  # shuffled
    frame["Date"] = pd.Timestamp("2015-03-01") + pd.to_timedelta(frame["day"], "D")
    out = add_events(frame, "Date", "Store", ("Holiday",)).set_index(["Store", "day"])
    a, b = out.loc["A"].sort_index(), out.loc["B"]
    np.testing.assert_array_equal(a["Holiday_since"], [NAN, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(a["Holiday_until"], [1, 0, 2, 1, 0, NAN])
    assert b["Holiday_since"].isna().all() and b["Holiday_until"].isna().all()  # B's days never see A's events
    assert list(out.index) == list(frame.set_index(["Store", "day"]).index)  # each row's own values, in its order


@pytest.mark.quick
def test_an_events_nearness_is_also_a_category_up_to_two_weeks():
    frame = pd.DataFrame({"Store": "A", "Date": pd.date_range("2015-01-01", periods=40), "Holiday": "0"})
    frame.loc[[0, 30], "Holiday"] = "a"
    out = add_events(frame, "Date", "Store", ("Holiday",))
    np.testing.assert_array_equal(out["Holiday_since_days"][:17], [*range(15), 15, 15])  # the 16th day on: "further"
    np.testing.assert_array_equal(out["Holiday_until_days"][14:31], [15, *range(15, -1, -1)])
    assert out["Holiday_until_days"][31:].isna().all()  # no holiday after: missing, as the days are
    table = Table(train="t.csv", test="s.csv", target="y", id="id", date="Date", group="Store", events=("Holiday",),
                  categorical=("Store",), continuous=())
    cat, cont = table.columns()
    assert {"Holiday_since_days", "Holiday_until_days"} <= set(cat) and {"Holiday_since", "Holiday_until"} <= set(cont)


@pytest.mark.quick
def test_date_parts():
    frame = add_date_parts(pd.DataFrame({"Date": pd.to_datetime(["2015-12-31", "2016-01-01"])}), "Date")
    assert frame.drop(columns="Date").to_dict("list") == {
        "DateYear": [2015, 2016], "DateMonth": [12, 1], "DateWeek": [53, 53], "DateDay": [31, 1],  # (ISO weeks)
        "DateDayofweek": [3, 4], "DateDayofyear": [365, 1], "DateIs_month_start": [False, True],
        "DateIs_month_end": [True, False], "DateElapsed": [16800, 16801]}  # (days since 1970)


def tiny_table(root, train_promo=(0, 0, 0), test_promo=(0, 1)):
    """One store over five days: three training days, then two test days."""
    root.mkdir()
    dates = pd.date_range("2015-03-01", periods=5).strftime("%Y-%m-%d")
    pd.DataFrame({"Store": 1, "Date": dates[:3], "Promo": train_promo, "Sales": [10, 20, 30]}).to_csv(
        root / "train.csv", index=False)
    pd.DataFrame({"Id": [1, 2], "Store": 1, "Date": dates[3:], "Promo": test_promo}).to_csv(root / "test.csv", index=False)
    return Table(target="Sales", id="Id", categorical=("Store",), continuous=(), date="Date", group="Store",
                 events=("Promo",))


@pytest.mark.quick
def test_the_test_rows_events_count_for_the_training_rows(tmp_path):
    frame = layouts.read(tiny_table(tmp_path / "data"), tmp_path / "data")
    train = frame[frame["_split"] == "train"]
    np.testing.assert_array_equal(train["Promo_until"], [4, 3, 2])  # the promo on the test's second day
    assert train["Promo_since"].isna().all()


@pytest.mark.quick
def test_the_encoding_is_fitted_on_the_training_rows_only():
    frame = pd.DataFrame({
        "c": ["a", "b", "a", None, "z", "a"],           # "z" only in a validation row
        "x": [1.0, 2.0, NAN, 10.0, 1000.0, NAN],        # missing in training: an is-missing column
        "y": [1.0, 2.0, 3.0, 4.0, NAN, 500.0],          # missing in validation only: none
    })
    train, valid = np.arange(4), np.arange(4, 6)
    enc = Encoding.fit(frame, train, ["c"], ["x", "y"])
    assert list(enc.categories["c"]) == ["a", "b"] and enc.flagged == ["x"]
    assert enc.medians == {"x": 2.0, "y": 2.5}  # with the validation rows they would be 6 and 3
    np.testing.assert_allclose(enc.mean, [np.mean([1, 2, 2, 10]), 2.5])
    assert enc.categorical == ["c", "x_missing"] and enc.cardinalities == [3, 3] and enc.continuous == ["x", "y"]
    x, unseen = enc.transform(frame.iloc[valid])
    assert unseen == {"c": 1}  # "z"; a missing value is not counted
    np.testing.assert_array_equal(x[:, :2], [[0, 1], [1, 2]])  # codes: z unseen, a = 1; x present, x missing
    np.testing.assert_allclose(x[:, 2:], ([[1000, 2.5], [2.0, 500]] - enc.mean) / enc.std, rtol=1e-6)
    _, unseen = enc.transform(frame.iloc[train])
    assert unseen == {}  # (the missing one in training is coded 0 and not counted either)


@pytest.mark.quick
def test_time_folds_are_the_last_blocks_of_days():
    days = np.repeat(np.arange(100, 130), 2)[::-1]  # two rows a day, newest first as Kaggle's files
    folds = time_folds(days, 2, 7)
    assert (folds[days >= 123] == 1).all() and (folds[(days >= 116) & (days < 123)] == 0).all()
    assert (folds[days < 116] == -1).all()
    assert set(days[training_rows(folds, 1, "time")]) == set(range(100, 123))  # before fold 1's block
    assert set(days[training_rows(folds, 0, "time")]) == set(range(100, 116))  # not the later block
    assert set(training_rows(folds, 0, "stratified")) == set(np.flatnonzero(folds != 0))


@pytest.mark.quick
def test_too_little_history_for_the_time_folds_is_one_line():
    with pytest.raises(PipelineError) as e:
        time_folds(np.arange(30), 3, 10)
    assert str(e.value) == ("3 time-ordered folds of 10 days need more than 30 days of training data; it spans 30: "
                            "use --folds 2 or fewer")
    assert (time_folds(np.arange(30), 2, 10) == np.repeat([-1, 0, 1], 10)).all()  # as it says


@pytest.mark.quick
def test_the_network_sizes_each_embedding_by_the_rule_and_groups_its_layers():
    assert [embedding_size(n) for n in (3, 8, 1116, 10 ** 6)] == [3, 5, 81, 600]  # 1.6 n^0.56, at most 600
    model = EntityEmbeddings([1116, 8, 3], 2, (32, 16))
    assert [e.embedding_dim for e in model.embeds] == [81, 5, 3]
    assert model.layers[0].in_features == 81 + 5 + 3 + 2
    groups = {name: {id(p) for p in ps} for name, ps in layer_groups(model).items()}
    ids = lambda *modules: {id(p) for m in modules for p in m.parameters()}
    assert groups == {"early": ids(model.embeds, model.bn_cont), "late": ids(model.layers), "head": ids(model.head)}
    x = torch.tensor([[0, 7, 2, 0.5, -1.0], [1115, 0, 1, 0.0, 2.0]])  # codes 0: a value training never saw
    assert model.eval()(x).shape == (2, 1)


@pytest.mark.quick
def test_a_batch_of_rows_is_the_rows_one_by_one():
    x, y = torch.arange(40.0).reshape(10, 4), torch.arange(10.0) * 3
    for rows in (Rows(x, y), Rows(x, None)):
        batch = rows.__getitems__([7, 2, 2, 9])
        alone = [rows[i] for i in (7, 2, 2, 9)]
        if rows.y is None:
            assert torch.equal(batch, torch.stack(alone))
        else:
            assert torch.equal(batch[0], torch.stack([a for a, _ in alone]))
            assert torch.equal(batch[1], torch.stack([b for _, b in alone]))
    loader = torch.utils.data.DataLoader(Rows(x, y), batch_size=4, collate_fn=Rows.collate)
    first = next(iter(loader))  # torch's loader asks for the batch at once
    assert torch.equal(first[0], x[:4]) and torch.equal(first[1], y[:4])


@pytest.mark.quick
def test_rmspe_leaves_out_the_days_without_sales():
    y = np.array([0.0, 100.0, 200.0])
    assert rmspe(y, np.array([50.0, 110.0, 180.0])) == pytest.approx(0.1)
    assert rmspe(y, np.array([1e9, 110.0, 180.0])) == pytest.approx(0.1)
    assert np.isnan(rmspe(np.zeros(3), np.ones(3)))


@pytest.fixture
def rossmann(tmp_path, monkeypatch, workdir):
    """A Rossmann data folder (a real slice when the shared data is here) and the definition with
    a recipe for seconds: two time-ordered folds, two epochs, dense widths 32 and 16."""
    data = tmp_path / "rossmann-store-sales"
    (rossmann_data.real_slice if rossmann_data.REAL else rossmann_data.made_up)(data)
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(rossmann_data.definition(tmp_path / "competitions")))
    return data


def test_rossmann_end_to_end(rossmann, workdir, monkeypatch, capsys, kaggle):
    trained_on = {}  # fold k -> the rows its training (and its encoding) is fitted on
    fit = TableSource.inputs

    def inputs(self, rows, fold=""):
        if fold:  # (the train stage names the fold; predict and diagnostics ask for the same rows)
            trained_on[int(fold.split()[1].rstrip(":"))] = rows.copy()
        return fit(self, rows, fold)
    monkeypatch.setattr(TableSource, "inputs", inputs)
    run = ["run", "rossmann-store-sales", "--data", str(rossmann), "--batch-size", "64"]
    assert main(run) == 0
    out_dir = workdir / "data" / "runs" / "rossmann-store-sales" / "cpu"

    # the submission: the sample's rows and header; closed stores sell nothing, open ones something
    sample = pd.read_csv(rossmann / "sample_submission.csv", dtype=str)
    sub = pd.read_csv(workdir / "submissions" / "rossmann-store-sales" / "cpu.csv", dtype={"Id": str})
    assert list(sub.columns) == ["Id", "Sales"] and list(sub["Id"]) == list(sample["Id"])
    test = pd.read_csv(rossmann / "test.csv", dtype={"Id": str}).set_index("Id").loc[sub["Id"]]
    closed = (test["Open"] == 0).to_numpy()
    assert closed.any() and (sub["Sales"][closed] == 0).all()
    assert np.isfinite(sub["Sales"][~closed]).all() and (sub["Sales"][~closed] > 0).all()

    # fold 1: the test period's length of days at the end; fold 0 the block before; -1 the rest
    train = pd.read_csv(rossmann / "train.csv", parse_dates=["Date"])
    folds = pd.read_csv(out_dir / "folds.csv")
    date = train["Date"].to_numpy()[folds["id"]]
    horizon = pd.read_csv(rossmann / "test.csv", parse_dates=["Date"])["Date"].nunique()
    back = (date.max() - date) // np.timedelta64(1, "D")
    assert (folds["fold"] == np.select([back < horizon, back < 2 * horizon], [1, 0], -1)).all()
    rows = trained_on[1]
    assert list(trained_on) == [1] and date[rows].max() < date[folds["fold"] == 1].min() and (folds["fold"].to_numpy()[rows] < 1).all()

    scores = read_json(out_dir / "scores.json")
    assert scores["metric"] == "rmspe" and np.isfinite(scores["oof"]) and [f["fold"] for f in scores["folds"]] == [1]
    assert (out_dir / "diagnostics" / "residuals.csv").is_file()
    assert list((out_dir / "diagnostics").glob("embedding_*.png"))

    # again: the table read from the cache, every stage up to date
    capsys.readouterr()
    monkeypatch.setattr(layouts, "read", lambda *a, **kw: pytest.fail("the table was read again"))
    assert main(run) == 0
    out = capsys.readouterr().out
    for stage in ("folds", "train", "predict", "submit", "diagnostics"):
        assert f"[{stage}] up to date, skipped" in out

    trained_on.clear()
    assert main([*run, "--train-folds", "all"]) == 0
    assert "fold 1: trained, skipped" in capsys.readouterr().out
    assert [f["fold"] for f in read_json(out_dir / "scores.json")["folds"]] == [0, 1]
    assert list(trained_on) == [0]
    rows = trained_on[0]
    assert (folds["fold"].to_numpy()[rows] == -1).all() and date[rows].max() < date[folds["fold"] == 0].min()

    # and `pipeline submit` checks it against the sample (a table's test ids: test.csv's) and sends it
    assert main(["submit", "rossmann-store-sales", "-m", "tiny", "--data", str(rossmann)]) == 0
    assert kaggle.submissions[0]["bytes"] == (workdir / "submissions" / "rossmann-store-sales" / "cpu.csv").read_bytes()


@pytest.mark.quick
def test_trees_stop_on_the_last_days_of_their_own_training_rows():
    days = np.repeat(np.arange(30), 3)  # three rows a day
    folds = time_folds(days, 2, 7)
    train = training_rows(folds, 1, "time")
    s = trees.stopping_rows(train, days, 7, seed=0)
    assert set(days[s.stop]) == set(range(16, 23)) and days[s.fit].max() == 15  # the 7 days before fold 1's
    assert not set(s.stop) & set(np.flatnonzero(folds == 1)) and len(s.fit) + len(s.stop) == len(train)
    s = trees.stopping_rows(np.arange(100), None, None, seed=0)  # no dates: a tenth at random
    assert len(s.stop) == 10 and sorted([*s.fit, *s.stop]) == list(range(100))
    with pytest.raises(PipelineError, match="too few"):
        trees.stopping_rows(np.arange(3), np.zeros(3, int), 7, seed=0)


def test_rossmann_trees_run_through_the_same_stages(rossmann, workdir, capsys):
    run = ["run", "rossmann-store-sales", "--data", str(rossmann), "--recipe", "trees", "--train-folds", "all",
           "--folds", "2", "--set", "trees.min_leaf=5", "--set", "trees.rounds=300"]
    assert main(run) == 0
    out = capsys.readouterr().out
    out_dir = workdir / "data" / "runs" / "rossmann-store-sales" / "trees"
    assert "stopped at round" in out and "refitted on all" in out
    for k in (0, 1):
        summary = read_json(out_dir / f"fold{k}" / "trees.json")
        assert 1 <= summary["stopped_at"] <= 300 and summary["rounds"] >= summary["stopped_at"]
        assert summary["stopped_on"].startswith("the last ") and summary["stop_rows"] < summary["train_rows"]
        assert (out_dir / "diagnostics" / f"trees_fold{k}.png").is_file()
    assert read_json(out_dir / "settings.json")["recipe"]["trees"]["min_leaf"] == 5

    # the submission: the sample's rows, closed stores 0, open ones a positive number of sales
    sample = pd.read_csv(rossmann / "sample_submission.csv", dtype=str)
    sub = pd.read_csv(workdir / "submissions" / "rossmann-store-sales" / "trees.csv", dtype={"Id": str})
    assert list(sub.columns) == ["Id", "Sales"] and list(sub["Id"]) == list(sample["Id"])
    closed = (pd.read_csv(rossmann / "test.csv", dtype={"Id": str}).set_index("Id").loc[sub["Id"], "Open"] == 0).to_numpy()
    assert (sub["Sales"][closed] == 0).all() and (sub["Sales"][~closed] > 0).all()

    # scored as a network's run is, and better than every store's median sales of its training rows
    scores = read_json(out_dir / "scores.json")
    assert [f["fold"] for f in scores["folds"]] == [0, 1] and np.isfinite(scores["oof"])
    oof = pd.read_parquet(out_dir / "oof_predictions.parquet")
    train = pd.read_csv(rossmann / "train.csv", dtype={"StateHoliday": str})
    rows = train.iloc[oof["id"].astype(int)]
    median = rows["Store"].map(train[train["Sales"] > 0].groupby("Store")["Sales"].median())
    assert rmspe(oof["label"].to_numpy(), np.expm1(oof["prediction"].to_numpy())) < rmspe(oof["label"].to_numpy(), median.to_numpy())

    # again: every stage up to date; trees cut off are grown again
    assert main(run) == 0
    assert "[train] up to date, skipped" in capsys.readouterr().out
    model = out_dir / "fold1" / "trees.txt"
    model.write_text(model.read_text()[:500])
    assert main(run) == 0
    out = capsys.readouterr().out
    assert "fold 1: " in out and "does not load" in out and "fold 0: trained, skipped" in out


@pytest.mark.quick
def test_trees_settings_belong_to_a_trees_recipe(rossmann, workdir, capsys):
    for argv, said in [(["--set", "trees.leaves=31"], "trees.* are a trees recipe's settings"),
                       (["--recipe", "trees", "--set", "trees.leafs=31"], "the trees' settings are trees.leaves"),
                       (["--arch", "lightgbm", "--tta", "2"], "a table's rows have no test-time views")]:
        assert main(["run", "rossmann-store-sales", "--data", str(rossmann), *argv]) == 2
        assert said in capsys.readouterr().err
    assert main(["run", "digits", "--arch", "lightgbm"]) == 2
    assert "this competition has images" in capsys.readouterr().err


@pytest.mark.quick
def test_lr_find_on_trees_is_one_line(rossmann, workdir, capsys):
    assert main(["lr-find", "rossmann-store-sales", "--data", str(rossmann), "--recipe", "trees"]) == 2
    assert "grows trees (arch lightgbm), whose rate is trees.lr" in capsys.readouterr().err
