"""`pipeline blend`: runs combined on their OOF predictions, written as a run of its own; the
methods on known predictions; and every way runs cannot be blended, one line each."""
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.blending import methods
from pipeline.cli import main
from pipeline.competition import load
from pipeline.core.files import read_json
from pipeline.core.workdir import Workdir
from pipeline.metrics import rmspe
from pipeline.stages.context import start
from pipeline.stages.run import run_all
from pipeline.tracking.registry import read_runs

import kaggle_layouts
import rossmann_data
from conftest import shrink


def rmse(y, p):
    return float(np.sqrt(np.mean((y - p[:, 0]) ** 2)))


def lower(a, b):
    return a < b


def refused(argv, capsys, said: str) -> bool:
    """The command fails with one line saying `said`."""
    capsys.readouterr()
    code, err = main(argv), capsys.readouterr().err
    assert code == 2 and said in err and err.count("\n") == 1, err
    return True


@pytest.mark.quick
def test_select_weighs_the_runs_that_help_and_drops_the_one_that_does_not():
    rng = np.random.default_rng(0)
    y = rng.normal(size=4000)
    a, b = y + rng.normal(scale=0.5, size=y.size), y + rng.normal(scale=0.5, size=y.size)  # independent errors
    bad = a + 1.0                                                          # a's errors, and a bias besides
    P = np.stack([a, b, bad])[:, :, None]
    chosen = methods.fit("select", P, y, "regression", rmse, lower)
    assert chosen.weights[2] == 0 and abs(chosen.weights[0] - 0.5) < 0.15 and chosen.weights.sum() == pytest.approx(1)
    assert rmse(y, chosen.apply(P)) < 0.8 * min(rmse(y, a[:, None]), rmse(y, b[:, None]))
    assert methods.fit("mean", P, y, "regression", rmse, lower).weights.tolist() == pytest.approx([1 / 3] * 3)
    stack = methods.fit("stack", P, y, "regression", rmse, lower)
    assert rmse(y, stack.apply(P)) < 0.8 * min(rmse(y, a[:, None]), rmse(y, b[:, None]))


@pytest.mark.quick
def test_stack_of_class_probabilities_gives_probabilities():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 600)
    onehot = np.eye(3)[y]
    P = np.stack([0.6 * onehot + 0.4 * rng.dirichlet(np.ones(3), 600) for _ in range(2)])
    out = methods.fit("stack", P, y, "classes", None, None).apply(P)
    assert out.shape == (600, 3) and np.allclose(out.sum(1), 1) and (out.argmax(1) == y).mean() > 0.9


@pytest.fixture
def rossmann(tmp_path, monkeypatch, workdir):
    data = tmp_path / "rossmann-store-sales"
    (rossmann_data.real_slice if rossmann_data.REAL else rossmann_data.made_up)(data)
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(rossmann_data.definition(tmp_path / "competitions")))
    return data


def test_a_network_and_trees_blended_on_rossmann(rossmann, workdir, capsys, kaggle):
    both = ["--data", str(rossmann), "--folds", "2", "--train-folds", "all"]
    assert main(["run", "rossmann-store-sales", *both, "--run", "net", "--batch-size", "64"]) == 0
    assert main(["run", "rossmann-store-sales", *both, "--run", "trees", "--recipe", "trees",
                 "--set", "trees.min_leaf=5", "--set", "trees.rounds=300"]) == 0
    capsys.readouterr()
    assert main(["blend", "rossmann-store-sales", "net", "trees", "--data", str(rossmann), "--run", "nt"]) == 0
    out = capsys.readouterr().out
    assert "nested (each fold's blend chosen on the other folds)" in out and "fold noise" in out

    runs = workdir / "data" / "runs" / "rossmann-store-sales"
    scores, blend = read_json(runs / "nt" / "scores.json"), read_json(runs / "nt" / "blend.json")
    assert blend["members"] == ["net", "trees"] and sum(blend["weights"]) == pytest.approx(1)
    assert [f["fold"] for f in scores["folds"]] == [0, 1] and scores["oof"] == blend["oof_nested"]

    # the blend's OOF file holds the nested predictions, in log1p as the runs': its score is the recorded one
    oof = pd.read_parquet(runs / "nt" / "oof_predictions.parquet")
    assert rmspe(oof["label"].to_numpy(), np.expm1(oof["prediction"].to_numpy())) == pytest.approx(scores["oof"])
    # the test predictions are the runs' fold ensembles weighed as chosen on all of the OOF rows
    tests = [pd.read_parquet(runs / n / "test_predictions.parquet").groupby("id", sort=False)["prediction"].mean()
             for n in ("net", "trees")]
    test = pd.read_parquet(runs / "nt" / "test_predictions.parquet").set_index("id")["prediction"]
    mixed = blend["weights"][0] * tests[0] + blend["weights"][1] * tests[1]
    assert np.allclose(test.to_numpy(), mixed.loc[test.index].to_numpy(), atol=1e-5)

    # its submission is checked and written like a run's (closed stores 0), and the report ranks it
    sub = pd.read_csv(workdir / "submissions" / "rossmann-store-sales" / "nt.csv", dtype={"Id": str})
    sample = pd.read_csv(rossmann / "sample_submission.csv", dtype=str)
    assert list(sub["Id"]) == list(sample["Id"])
    closed = (pd.read_csv(rossmann / "test.csv", dtype={"Id": str}).set_index("Id").loc[sub["Id"], "Open"] == 0).to_numpy()
    assert (sub["Sales"][closed] == 0).all() and (sub["Sales"][~closed] > 0).all()
    recorded = read_runs(Workdir(workdir), "rossmann-store-sales")
    assert set(recorded["run"]) == {"net", "trees", "nt"}
    assert json.loads(recorded[recorded["run"] == "nt"]["settings"].iloc[0])["recipe"]["blend"]["weights"] == blend["weights"]
    assert main(["report", "rossmann-store-sales"]) == 0
    [row] = [line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] == ["nt"]]
    assert "0-1 of 2" in row and f"{scores['oof']:.4f}" in row

    # `pipeline submit` sends it as it sends a run's
    assert main(["submit", "rossmann-store-sales", "--run", "nt", "-m", "blend", "--data", str(rossmann)]) == 0
    assert kaggle.submissions[0]["bytes"] == (workdir / "submissions" / "rossmann-store-sales" / "nt.csv").read_bytes()

    # stack, fitted fold by fold; mean
    assert main(["blend", "rossmann-store-sales", "net", "trees", "--data", str(rossmann), "--run", "st",
                 "--method", "stack"]) == 0
    assert len(read_json(runs / "st" / "blend.json")["coefficients"]) == 2
    assert main(["blend", "rossmann-store-sales", "net", "trees", "--data", str(rossmann), "--run", "mn",
                 "--method", "mean"]) == 0
    assert read_json(runs / "mn" / "blend.json")["weights"] == [0.5, 0.5]

    # what cannot be blended, one line each
    for argv, said in [
        (["net"], "blend needs two runs or more"),
        (["net", "nope"], "no run 'nope' of rossmann-store-sales"),
        (["net", "net"], "named twice"),
        (["net", "trees", "--run", "net"], "one of the runs blended"),
    ]:
        assert refused(["blend", "rossmann-store-sales", *argv, "--data", str(rossmann)], capsys, said)
    (runs / "trees" / "scores.json").unlink()
    assert refused(["blend", "rossmann-store-sales", "net", "trees", "--data", str(rossmann)], capsys,
                   "run 'trees' did not finish")
    assert main(["run", "rossmann-store-sales", "--data", str(rossmann), "--run", "other", "--batch-size", "64"]) == 0
    assert refused(["blend", "rossmann-store-sales", "net", "other", "--data", str(rossmann)], capsys,
                   "scored on different folds")
    assert main(["run", "rossmann-store-sales", *both, "--run", "three", "--batch-size", "64", "--folds", "3"]) == 0
    assert refused(["blend", "rossmann-store-sales", "net", "three", "--data", str(rossmann)], capsys,
                   "have different folds")


def test_classes_blended_as_probabilities_and_other_competitions_runs_refused(workdir, rossmann, capsys):
    recipe = replace(shrink(load("digits").recipes["cpu"]), train_folds=None, folds=2)
    for run, changes in (("d", {}), ("e", {"label_smoothing": 0.1})):
        run_all(start("digits", recipe=replace(recipe, **changes), run=run, log=lambda *a: None))
    for method in ("select", "stack"):
        assert main(["blend", "digits", "d", "e", "--method", method, "--run", method]) == 0
        run_dir = workdir / "data" / "runs" / "digits" / method
        classes = load("digits").classes or [str(i) for i in range(10)]
        for f in ("oof_predictions.parquet", "test_predictions.parquet"):
            p = pd.read_parquet(run_dir / f)[classes].to_numpy()
            assert np.allclose(p.sum(1), 1, atol=1e-4) and (p >= 0).all()
        assert read_json(run_dir / "scores.json")["oof"] == read_json(run_dir / "blend.json")["oof_nested"]
        assert (workdir / "submissions" / "digits" / f"{method}.csv").is_file()
    assert refused(["blend", "rossmann-store-sales", "d", "e", "--data", str(rossmann)], capsys,
                   "run 'd' is a run of digits, not rossmann-store-sales")


def test_tags_blended_with_thresholds_tuned_again(workdir, tmp_path):
    data = kaggle_layouts.planet(tmp_path / "planet")
    name = "planet-understanding-the-amazon-from-space"
    recipe = replace(shrink(load(name).recipes["cpu"]), train_folds=None, folds=2)
    for run, changes in (("a", {}), ("b", {"label_smoothing": 0.1})):
        run_all(start(name, recipe=replace(recipe, **changes), data=str(data), run=run, log=lambda *a: None))
    assert main(["blend", name, "a", "b", "--method", "stack", "--data", str(data)]) == 0
    run_dir, classes = workdir / "data" / "runs" / name / "blend", load(name).classes
    assert set(read_json(run_dir / "thresholds.json")["thresholds"]) == set(classes)
    oof = pd.read_parquet(run_dir / "oof_predictions.parquet")[classes].to_numpy()
    assert (oof >= 0).all() and (oof <= 1).all()
    sub = pd.read_csv(workdir / "submissions" / name / "blend.csv", dtype=str)
    sample = pd.read_csv(data / "sample_submission_v2.csv", dtype=str)
    assert list(sub["image_name"]) == list(sample["image_name"])
    assert all(t.split() and set(t.split()) <= set(classes) for t in sub["tags"])
