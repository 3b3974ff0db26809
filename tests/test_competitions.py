"""One smoke run per competition, end to end, on tiny data in its exact Kaggle layout, with its
own CPU recipe shrunk to seconds."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import fbeta_score, log_loss

import kaggle_layouts
from pipeline.competition import load
from pipeline.core.files import read_json
from pipeline.core.workdir import Workdir
from pipeline.stages.context import start
from pipeline.stages.run import format_scores, run_all
from pipeline.tracking.registry import read_runs

from conftest import shrink
from test_pipeline import Log

pytestmark = pytest.mark.quick  # every test here: the edit-test loop's tier


def smoke(name, data, workdir, **overrides):
    log = Log()
    result = run_all(start(name, recipe=shrink(load(name).recipes["cpu"]), data=str(data), log=log, **overrides))
    run_dir = workdir / "data" / "runs" / name / "custom"
    return result, run_dir, pd.read_csv(workdir / "submissions" / name / "custom.csv", dtype=str), log


def test_dog_breed_identification(workdir, tmp_path):
    data = kaggle_layouts.dog_breeds(tmp_path / "dog-breed")
    result, run_dir, sub, log = smoke("dog-breed-identification", data, workdir)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == list(sample.columns) and list(sub["id"]) == list(sample["id"])
    probs = sub.drop(columns="id").astype(float)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and (probs > 0).all().all()
    assert any("4 classes from the training labels: beagle, boxer, chihuahua, pug" in line for line in log)
    assert result["metric"] == "log_loss" and not result["higher_is_better"]
    # the CV score is the multi-class log loss of the OOF probabilities, as scikit-learn computes it
    oof = pd.read_parquet(run_dir / "oof_predictions.parquet")
    breeds = load("dog-breed-identification").layout.train(data, None)["label"].drop_duplicates().sort_values()
    y = oof["label"].map({b: i for i, b in enumerate(breeds)})
    assert result["oof"] == pytest.approx(log_loss(y, oof[list(breeds)].to_numpy(), labels=range(len(breeds))))
    runs = read_runs(Workdir(workdir))
    assert (runs["metric"] == "log_loss").all() and not runs["higher_is_better"].any()
    assert (run_dir / "diagnostics" / "confusion.csv").exists()


def test_dogs_vs_cats(workdir, tmp_path):
    data = kaggle_layouts.dogs_vs_cats(tmp_path / "dogs-vs-cats")
    result, run_dir, sub, _ = smoke("dogs-vs-cats-redux-kernels-edition", data, workdir)
    assert list(sub.columns) == ["id", "label"] and list(sub["id"]) == [str(i) for i in range(1, 7)]
    p = sub["label"].astype(float)
    assert ((p >= 0.005) & (p <= 0.995)).all()
    test = pd.read_parquet(run_dir / "test_predictions.parquet")
    assert np.allclose(np.clip(test.groupby("id", sort=False)["dog"].mean().loc[sub["id"]], 0.005, 0.995), p, atol=1e-5)
    oof = pd.read_parquet(run_dir / "oof_predictions.parquet")
    assert set(oof["label"]) == {"cat", "dog"}
    # scored as submitted: the binary log loss of P(dog) clipped to [0.005, 0.995]
    p_dog = np.clip(oof["dog"].to_numpy(), 0.005, 0.995)
    assert result["oof"] == pytest.approx(log_loss(oof["label"] == "dog", p_dog))


def test_planet(workdir, tmp_path):
    data = kaggle_layouts.planet(tmp_path / "planet")
    name = "planet-understanding-the-amazon-from-space"
    # rare tags oversampled, and a mining round: both work from tags too
    result, run_dir, sub, log = smoke(name, data, workdir, oversample="max", hard_negatives=0.25)
    mined = pd.read_csv(run_dir / "fold0" / "hard_negatives.csv")
    assert len(mined) == 8 and all(set(t.split()) <= set(load(name).classes) for t in mined["label"])
    sample = pd.read_csv(data / "sample_submission_v2.csv", dtype=str)
    assert list(sub.columns) == ["image_name", "tags"] and list(sub["image_name"]) == list(sample["image_name"])
    classes = load(name).classes
    assert all(t.split() and set(t.split()) <= set(classes) for t in sub["tags"])
    tuned = read_json(run_dir / "thresholds.json")
    assert set(tuned["thresholds"]) == set(classes) and tuned["default"] == 0.2
    t = np.array([tuned["thresholds"][c] for c in classes])
    assert (t != 0.2).any()  # tuning moved some threshold: the checks below tell tuned from default

    def decided(probs, thresholds):  # tags at or above their threshold; the likeliest if none is
        d = probs >= thresholds
        d[np.arange(len(d)), probs.argmax(1)] |= ~d.any(1)
        return d
    oof = pd.read_parquet(run_dir / "oof_predictions.parquet")
    y, p = np.array([[c in tags.split() for c in classes] for tags in oof["label"]]), oof[classes].to_numpy()
    def sk_f2(d): return fbeta_score(y, d, beta=2, average="samples", zero_division=0)
    assert result["oof"] == pytest.approx(sk_f2(decided(p, t)))  # the CV score: F2 at the tuned thresholds
    assert tuned["oof_f2_tuned"] == pytest.approx(result["oof"])
    assert tuned["oof_f2_default"] == pytest.approx(sk_f2(decided(p, 0.2)))
    # the submission: the tags of the fold-averaged test probabilities at the tuned thresholds
    test = pd.read_parquet(run_dir / "test_predictions.parquet").groupby("id", sort=False)[classes].mean()
    want = [" ".join(c for c, on in zip(classes, row) if on) for row in decided(test.loc[sub["image_name"]].to_numpy(), t)]
    assert list(sub["tags"]) == want
    assert any(line == "[thresholds]" for line in log)
    one = len(result["folds"]) == 1  # then the tuned score is in-sample, and there is no spread to show: said so
    assert any("tuned and scored on the same images, so optimistic" in line for line in log) == one
    assert ("±" not in format_scores(result)) == one and ("(one fold: --train-folds all" in format_scores(result)) == one
    assert oof[classes].max().max() <= 1 and not np.allclose(oof[classes].sum(axis=1), 1)  # sigmoids
    table = pd.read_csv(run_dir / "diagnostics" / "per_class.csv")
    assert set(table["tag"]) == set(classes) and "threshold" in table


def test_planet_check_memorises_tags(workdir, tmp_path):
    from pipeline.stages.check import check
    name = "planet-understanding-the-amazon-from-space"
    data = kaggle_layouts.planet(tmp_path / "planet")
    r = start(name, recipe=shrink(load(name).recipes["cpu"]), data=str(data), log=Log())
    passed, report = check(r, images=16, steps=150, size=32, lr=3e-3)
    assert passed, report
