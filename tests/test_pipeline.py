"""End-to-end smoke runs of each competition with its own recipe shrunk to seconds, plus the
re-run rules: unchanged stages are skipped, a changed setting re-runs what it affects, and a
killed run resumes from its last finished epoch."""
from dataclasses import replace

import pandas as pd
import pytest
import torch

from pipeline.competition import load
from pipeline.core.files import read_json
from pipeline.core.workdir import Workdir
from pipeline.stages.context import start
from pipeline.stages.run import run_all
from pipeline.tracking.registry import read_runs

from conftest import shrink


class Log(list):
    def __call__(self, *parts):
        self.append(" ".join(map(str, parts)))


def run(name, recipe, log=None, **kw):
    return run_all(start(name, recipe=recipe, log=Log() if log is None else log, **kw))


def test_digits_end_to_end(workdir):
    recipe = shrink(load("digits").recipes["cpu"])
    result = run("digits", recipe)
    data = workdir / "data" / "digits"
    assert (data / "train.csv").exists() and len(list((data / "test").glob("*.png"))) == 300
    sub = pd.read_csv(workdir / "submissions" / "digits" / "custom.csv", dtype=str)
    sample = pd.read_csv(data / "sample_submission.csv", dtype=str)
    assert list(sub.columns) == ["id", "label"] and list(sub["id"]) == list(sample["id"])
    assert set(sub["label"]) <= {str(d) for d in range(10)}
    folds = pd.read_csv(workdir / "data" / "runs" / "digits" / "custom" / "folds.csv")
    assert [f["fold"] for f in result["folds"]] == recipe.fold_list()
    assert result["oof_images"] == folds["fold"].isin(recipe.fold_list()).sum()
    run_dir = workdir / "data" / "runs" / "digits" / "custom"
    for f in ("settings.json", "scores.json", "folds.csv", "oof_predictions.parquet", "test_predictions.parquet",
              "fold0/last.pt", "fold0/best.pt", "fold0/history.csv", "fold0/steps.csv", "ensemble.json",
              "diagnostics/curves_fold0.png", "diagnostics/curves_fold1.png", "diagnostics/confusion.png",
              "diagnostics/confusion.csv", "diagnostics/per_class.csv", "diagnostics/top_losses.png"):
        assert (run_dir / f).exists(), f
    assert not (run_dir / "fold0" / "state.pt").exists()
    history = pd.read_csv(run_dir / "fold0" / "history.csv")
    assert list(history["phase"]) == list(range(len(recipe.phases)))


def test_plant_seedlings_end_to_end_and_reruns(workdir, plant_data):
    recipe = replace(shrink(load("plant-seedlings").recipes["cpu"]), train_folds=(0, 1))
    result = run("plant-seedlings", recipe, data=str(plant_data))
    assert result["trained_folds"] == [0, 1] and result["total_folds"] == 5
    assert result["oof_images"] == 24  # 2 of 5 folds of 60 images
    sub_file = workdir / "submissions" / "plant-seedlings" / "custom.csv"
    sub = pd.read_csv(sub_file)
    sample = pd.read_csv(plant_data / "sample_submission.csv")
    assert list(sub.columns) == ["file", "species"] and list(sub["file"]) == list(sample["file"])
    oof = pd.read_parquet(workdir / "data" / "runs" / "plant-seedlings" / "custom" / "oof_predictions.parquet")
    assert sorted(oof["fold"].unique()) == [0, 1]
    assert oof.iloc[:, 3:].sum(axis=1).round(4).eq(1).all()

    # the same settings again: every stage is up to date
    log = Log()
    run("plant-seedlings", recipe, log=log, data=str(plant_data))
    assert {l for l in log if "skipped" in l} == \
        {f"[{s}] up to date, skipped" for s in ("images", "folds", "train", "predict", "submit", "diagnostics")}

    # a different TTA re-runs prediction and what follows it, not training
    log = Log()
    run("plant-seedlings", replace(recipe, tta=2), log=log, data=str(plant_data))
    assert "[train] up to date, skipped" in log and "[predict]" in log and "[submit]" in log

    # a changed phase re-trains, on the same folds
    log = Log()
    run("plant-seedlings", replace(recipe, phases=recipe.phases[:1]), log=log, data=str(plant_data))
    assert "[folds] up to date, skipped" in log and "[train]" in log


def test_a_killed_run_resumes_from_its_last_epoch_and_leaves_no_submission(workdir, plant_data):
    recipe = shrink(load("plant-seedlings").recipes["cpu"])
    recipe = replace(recipe, train_folds=(0,), phases=(replace(recipe.phases[-1], epochs=2),))

    def killer(*parts):
        if "epoch 2/2" in " ".join(map(str, parts)):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run("plant-seedlings", recipe, log=killer, data=str(plant_data))
    fold_dir = workdir / "data" / "runs" / "plant-seedlings" / "custom" / "fold0"
    assert (fold_dir / "state.pt").exists() and not (fold_dir / "last.pt").exists()
    assert not (workdir / "submissions" / "plant-seedlings").exists()
    recorded = read_runs(Workdir(workdir), "plant-seedlings")
    assert list(recorded["status"]) == ["interrupted"] and recorded["score"].isna().all()

    log = Log()
    run("plant-seedlings", recipe, log=log, data=str(plant_data))
    assert any("resuming at phase 1, epoch 2" in l for l in log)
    assert sum("epoch 1/2" in l for l in log) == 0  # the finished epoch was not trained again
    assert len(pd.read_csv(fold_dir / "history.csv")) == 2
    scores = read_json(fold_dir.parent / "scores.json")
    assert scores["trained_folds"] == [0]
    recorded = read_runs(Workdir(workdir), "plant-seedlings")  # the finished attempt replaces the interrupted one
    assert list(recorded["status"]) == ["finished"] and list(recorded["fold"]) == [0]
    assert recorded["score"][0] == scores["folds"][0]["micro_f1"] and recorded["oof"][0] == scores["oof"]

    # and it ends with exactly the weights of a run that was never interrupted
    run("plant-seedlings", recipe, data=str(plant_data), run="uninterrupted")
    resumed = torch.load(fold_dir / "last.pt", weights_only=False)["model"]
    straight = torch.load(fold_dir.parent.parent / "uninterrupted" / "fold0" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
