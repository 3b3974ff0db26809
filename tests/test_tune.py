"""`pipeline tune` on digits with timm's test model (seconds a trial): searches that find the good
rates, a grid run exactly, pruning, a killed study resumed, two processes sharing one study,
and `--show`'s recipe pasted back."""
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import optuna
import pandas as pd
import pytest
import torch

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.competition import load
from pipeline.core.workdir import Workdir
from pipeline.recipe import Phase, Recipe, swa_round
from pipeline.search import apply, source
from pipeline.tuning.tune import masked, storage_for, tune
import pipeline.stages.context
import pipeline.stages.run

TINY = '''
from pipeline.competition import Submission
from pipeline.layouts import LabelsCSV
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.search import Choice, Float, Int

slug = "tiny"
classes = [str(d) for d in range(10)]
layout = LabelsCSV(csv="train.csv", id_column="id", label_column="label", suffix=".png")
metric = accuracy
symmetry = "none"
submission = Submission(id_column="id", label_column="label")
recipes = {"cpu": Recipe(arch="test_efficientnet", weights="none", folds=3, train_folds=(0,), batch_size=64, tta=1,
                         phases=(Phase(size=32, epochs=2, lr=1e-3),))}
search = SEARCH
'''
RATE = '{"phase1.lr": Float(1e-5, 1.0, log=True)}'


@pytest.fixture
def tiny(workdir, monkeypatch):
    """A digits competition of timm's test model, with a search space the test sets."""
    folder = workdir / "competitions" / "tiny"
    folder.mkdir(parents=True)
    load("digits").make_data(workdir / "data" / "tiny")

    def define(space: str = RATE):
        (folder / "competition.py").write_text(TINY.replace("SEARCH", space))
    define()
    return define


def trials_of(workdir, study):
    comp = load("tiny")
    return optuna.load_study(study_name=study, storage=storage_for(Workdir(workdir), comp, study, None)).trials


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_search_finds_a_rate_that_a_fixed_bad_one_misses(tiny, workdir, sampler):
    from pipeline.stages.context import start
    from pipeline.stages.run import run_all
    bad = run_all(start("tiny", recipe=apply(load("tiny").recipes["cpu"], {"phase1.lr": 1e-5}), run="bad-rate",
                        log=lambda *a: None))["oof"]
    tune("tiny", study=sampler, trials=6, sampler=sampler, seed=0, pruner="none", log=lambda *a: None)
    done = [t for t in trials_of(workdir, sampler) if t.state.name == "COMPLETE"]
    best = max(done, key=lambda t: t.value)
    assert len(done) == 6 and best.value > bad + 0.2
    assert 1e-4 <= best.params["phase1.lr"] <= 0.2  # the good region, five decades wide a search
    runs = pd.read_parquet(workdir / "data" / "registry" / "runs.parquet")
    assert {f"{sampler}-{t.number}" for t in done} <= set(runs["run"])  # each trial a run like any other


def test_a_grid_search_runs_exactly_the_grid(tiny, workdir, capsys):
    tiny('{"phase1.lr": Choice(1e-3, 3e-3), "label_smoothing": Choice(0.0, 0.1)}')
    assert main(["tune", "tiny", "--sampler", "grid", "--study", "g", "--pruner", "none"]) == 0
    done = [t for t in trials_of(workdir, "g") if t.state.name == "COMPLETE"]
    assert sorted((t.params["phase1.lr"], t.params["label_smoothing"]) for t in done) == \
        [(1e-3, 0.0), (1e-3, 0.1), (3e-3, 0.0), (3e-3, 0.1)]
    tiny('{"phase1.lr": Float(1e-3, 3e-3)}')
    assert main(["tune", "tiny", "--sampler", "grid", "--study", "g2"]) == 2
    assert "a grid search takes Choice(...) and Int(...) values" in capsys.readouterr().err


def test_an_unpromising_trial_is_pruned_early_and_recorded_so(tiny, workdir):
    comp, wd = load("tiny"), Workdir(workdir)
    study = optuna.create_study(study_name="p", storage=storage_for(wd, comp, "p", None), direction="maximize")
    study.enqueue_trial({"phase1.lr": 3e-3})
    study.enqueue_trial({"phase1.lr": 1e-5})
    said = []
    tune("tiny", study="p", trials=2, pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
         log=said.append)
    good, bad = trials_of(workdir, "p")
    assert good.state.name == "COMPLETE" and bad.state.name == "PRUNED"
    assert len(bad.intermediate_values) == 1 < len(good.intermediate_values) == 2  # stopped after its first epoch
    runs = pd.read_parquet(workdir / "data" / "registry" / "runs.parquet").set_index("run")
    assert runs.loc["p-1", "status"].startswith("pruned") and runs.loc["p-0", "status"] == "finished"
    assert any("pruned" in line for line in said)


def test_a_trial_on_two_folds_trains_both_and_is_scored_over_both(tiny, workdir, capsys):
    assert main(["tune", "tiny", "--study", "two", "--trials", "1", "--folds", "0,1", "--pruner", "none"]) == 0
    (trial,) = trials_of(workdir, "two")
    runs = pd.read_parquet(workdir / "data" / "registry" / "runs.parquet").set_index("run").loc[["two-0"]]
    assert sorted(runs["fold"]) == [0, 1]  # fold 2 of the recipe's 3 untrained
    assert trial.value == pytest.approx(runs["oof"].iloc[0])
    # out-of-fold over both folds' images (not fold 0's alone: a near-chance model can score the same on each)
    oof = pd.read_parquet(workdir / "data" / "runs" / "tiny" / "two-0" / "oof_predictions.parquet")
    assert sorted(set(oof["fold"])) == [0, 1]
    classes = [str(d) for d in range(10)]
    assert trial.value == pytest.approx((oof[classes].to_numpy().argmax(1) == oof["label"].astype(int)).mean())
    assert sorted(trial.intermediate_values) == [0, 1]  # the pruner's steps: fold 0's two epochs
    for bad in ("0,3", "1,1", "x"):
        assert main(["tune", "tiny", "--study", "bad", "--folds", bad]) == 2
        assert f"--folds {bad}: 0 (the first fold, fast), a list of the recipe's folds 0..2" in capsys.readouterr().err


def tune_process(workdir, *args):
    env = {**os.environ, "TQDM_DISABLE": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "tune", "tiny", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_study_killed_mid_trial_resumes_with_the_right_count(tiny, workdir):
    process = tune_process(workdir, "--study", "k", "--trials", "3", "--pruner", "none")
    state = workdir / "data" / "runs" / "tiny" / "k-1" / "fold0" / "state.pt"
    while not state.exists():  # trial 1 is inside its run
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    progress = torch.load(state, map_location="cpu", weights_only=False)  # where the kill landed
    resumed = f"resuming at phase {progress['phase'] + 1}, epoch {progress['epoch'] + 1}"
    again = tune_process(workdir, "--study", "k", "--trials", "3", "--pruner", "none")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-2000:]
    assert "trial 1 was left running by a process that died" in out and resumed in out
    states = [t.state.name for t in trials_of(workdir, "k")]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1 and "RUNNING" not in states


def test_two_processes_share_one_study_and_its_count(tiny, workdir):
    first, second = (tune_process(workdir, "--study", "two", "--trials", "4", "--pruner", "none") for _ in range(2))
    for p in (first, second):
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    trials = trials_of(workdir, "two")
    assert [t.state.name for t in trials].count("COMPLETE") == 4 and len(trials) == 4
    assert len({t.number for t in trials}) == 4 and len({t.user_attrs["pid"] for t in trials}) == 2


def test_show_prints_a_recipe_that_pasted_back_is_the_trials(tiny, workdir, capsys):
    tiny('{"phase1.lr": Float(1e-3, 1e-2, log=True), "label_smoothing": Float(0.0, 0.2), "checkpoint": Choice("last", "best")}')
    tune("tiny", study="s", trials=2, sampler="random", seed=1, pruner="none", log=lambda *a: None)
    assert main(["tune", "tiny", "--study", "s", "--show"]) == 0
    out = capsys.readouterr().out
    text = out.split("runs it again):\n")[1].split("\nplots: ")[0]
    best = max((t for t in trials_of(workdir, "s") if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert eval(text, {"Recipe": Recipe, "Phase": Phase}) == apply(load("tiny").recipes["cpu"], best.params)
    assert (workdir / "data" / "tune" / "tiny" / "s.html").read_text().count("<img") >= 2
    assert main(["run", "tiny", "--trial", f"s:{best.number}"]) == 0  # the trial's settings, run again
    assert f"tiny / run s-{best.number}" in capsys.readouterr().out


@pytest.mark.quick
@pytest.mark.parametrize("space, error", [
    ("{}", "the search space is empty"),
    ('{"phase3.lr": Float(1e-3, 1e-2)}', "the recipe has phases 1 to 1"),
    ('{"learning_rate": Float(1e-3, 1e-2)}', "no recipe setting of that name"),
    ('{"phase1.lr": Float(1e-2, 1e-3)}', "is empty (low must be below high"),
    ('{"tta": Choice()}', "Choice() of nothing"),
])
def test_a_bad_search_space_is_one_line_before_any_training(tiny, workdir, capsys, space, error):
    tiny(space)
    assert main(["tune", "tiny"]) == 2
    assert error in capsys.readouterr().err
    assert not (workdir / "data" / "runs").exists()


@pytest.mark.quick
def test_a_storage_that_cannot_be_reached_is_one_line(tiny, workdir, capsys):
    assert main(["tune", "tiny", "--storage", f"sqlite:///{workdir}/no/such/folder/study.db"]) == 2
    assert "--storage sqlite:///" in capsys.readouterr().err
    assert main(["tune", "tiny", "--study", "none", "--show"]) == 2
    assert "no study 'none' for tiny" in capsys.readouterr().err


class Looping(BaseException):
    """What a guarded fake raises past its fifth call: a study that would never stop, failed instead of hung."""


def fake_runs(monkeypatch, outcome):
    """Trials that don't train: the run's stages replaced by `outcome(call)` (a score, or it raises)."""
    calls = []

    def run_all(r):
        calls.append(r.name)
        if len(calls) > 5:
            raise Looping(f"{len(calls)} runs for a study of at most 4 trials")
        return {"oof": outcome(len(calls) - 1)}
    monkeypatch.setattr("pipeline.stages.run.run_all", run_all)
    return calls


def fail(message):
    raise PipelineError(message)


@pytest.mark.quick
def test_a_missing_data_folder_is_one_line_before_any_trial(tiny, workdir, monkeypatch, capsys):
    start, starts = pipeline.stages.context.start, []

    def guarded(*args, **kwargs):
        starts.append(kwargs.get("run"))
        if len(starts) > 5:
            raise Looping(f"trials {starts} run on without data")
        return start(*args, **kwargs)
    monkeypatch.setattr("pipeline.stages.context.start", guarded)
    with pytest.raises(PipelineError) as e:
        tune("tiny", study="nodata", trials=1, data=str(workdir / "nonexistent"), log=lambda *a: None)
    assert str(e.value).startswith(f"--data {workdir / 'nonexistent'}: not tiny's data") and "\n" not in str(e.value)
    assert not (workdir / "data" / "tune" / "tiny" / "nodata.journal").exists()  # no trial asked for
    assert main(["tune", "tiny", "--study", "nodata", "--trials", "1", "--data", "nonexistent"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.quick
def test_a_trial_that_fails_for_its_values_counts_toward_trials(tiny, workdir, monkeypatch):
    said = []
    fake_runs(monkeypatch, lambda call: fail("phase 1: these values cannot run") if call == 0 else 0.5)
    tune("tiny", study="f", trials=2, sampler="random", seed=0, pruner="none", log=said.append)
    assert [t.state.name for t in trials_of(workdir, "f")] == ["FAIL", "COMPLETE"]  # two asked for, not three
    assert "trial 0: failed: phase 1: these values cannot run" in said


@pytest.mark.quick
def test_trials_failing_in_a_row_stop_the_study_in_one_line(tiny, workdir, monkeypatch):
    fake_runs(monkeypatch, lambda call: fail("an error no trial's values cause"))
    with pytest.raises(PipelineError, match=r"^an error no trial's values cause \(trials 0, 1, 2 of study 'r' "
                                            r"failed in a row: the study stops"):
        tune("tiny", study="r", trials=20, sampler="random", pruner="none", log=lambda *a: None)
    assert [t.state.name for t in trials_of(workdir, "r")] == ["FAIL"] * 3
    with pytest.raises(PipelineError, match=r"\(trial 3 of study 'r' failed: the study stops"):  # all it ran failed
        tune("tiny", study="r", trials=4, sampler="random", pruner="none", log=lambda *a: None)


class Killed(BaseException):
    """A trial that ends its process (a crash, the memory killer, Ctrl-C)."""


@pytest.mark.quick
def test_a_trial_that_ends_its_process_each_time_is_queued_again_twice_at_most(tiny, workdir, monkeypatch):
    said = []

    def killed(call):
        raise Killed()
    fake_runs(monkeypatch, killed)
    for _ in range(3):  # the trial, and its values queued again twice
        with pytest.raises(Killed):
            tune("tiny", study="q", trials=2, sampler="random", pruner="none", log=said.append)
    assert "trial 2: its values were queued again 2 times already and are not again" in said[-1]
    fake_runs(monkeypatch, lambda call: 0.5)
    tune("tiny", study="q", trials=2, sampler="random", pruner="none", log=said.append)
    trials = trials_of(workdir, "q")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "FAIL", "COMPLETE"]  # the killed trial counts once
    assert trials[0].params == trials[1].params == trials[2].params != trials[3].params
    assert [t.user_attrs["run"] for t in trials] == ["q-0", "q-0", "q-0", "q-3"]  # each retry resumes the run


@pytest.mark.quick


@pytest.mark.quick
@pytest.mark.parametrize("name", ["../../../../escaped", "a/b", "OUTSIDE", ".hidden", "", "x" * 91])
def test_a_study_name_with_path_parts_is_refused_and_nothing_written(tiny, workdir, capsys, name):
    name = str(workdir.parent / "escaped") if name == "OUTSIDE" else name  # an absolute path
    before = set(workdir.parent.rglob("*"))
    commands = [["tune", "tiny", "--study", name, "--trials", "1"], ["tune", "tiny", "--study", name, "--show"]]
    if name:  # (an empty one is no STUDY:NUMBER)
        commands.append(["run", "tiny", "--trial", f"{name}:0"])
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"pipeline: error: study name {name!r}: use letters, digits and - _ .")
        assert err.count("\n") == 1, command
    assert set(workdir.parent.rglob("*")) == before  # no journal, lock or run, in data/tune/ or anywhere


@pytest.mark.quick
def test_a_storage_password_is_never_shown(tiny, workdir, capsys):
    url = "postgresql://user:secret@127.0.0.1:1/db"  # (no driver installed: it cannot be opened)
    for command in (["tune", "tiny", "--storage", url], ["tune", "tiny", "--show", "--storage", url],
                    ["run", "tiny", "--trial", "study:0", "--storage", url]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "--storage postgresql://user:***@127.0.0.1:1/db: cannot open it" in err and "secret" not in err


@pytest.mark.quick
def test_masked_hides_only_passwords():
    assert masked("in postgresql://user:p@ss@host:5432/db?x=1 (down)") == "in postgresql://user:***@host:5432/db?x=1 (down)"
    assert masked("mysql+pymysql://:secret@host/db") == "mysql+pymysql://:***@host/db"
    for text in ("sqlite:////tmp/a@b.db", "mysql://host:3306/db", "postgresql://user@host/db", "no url: a@b"):
        assert masked(text) == text


def test_the_recipe_source_round_trips():
    recipe = load("plant-seedlings").recipes["cpu"]
    assert eval(source(recipe), {"Recipe": Recipe, "Phase": Phase}) == recipe
    changed = apply(recipe, {"phase4.lr": 2e-3, "phase4.ratio": 4.0, "phase1.lr": 5e-3, "oversample": "max"})
    assert changed.phases[3].lr == (2e-3 / 16, 2e-3 / 4, 2e-3) and changed.phases[0].lr == 5e-3
    # the body keeps its share: the recipe's own ratio, 2.8
    assert apply(recipe, {"phase4.lr": 2e-3}).phases[3].lr == pytest.approx((2e-3 / 2.8 ** 2, 2e-3 / 2.8, 2e-3))
    # a trial that sets a phase's epochs or size keeps its differential rates
    assert apply(recipe, {"phase4.epochs": 3, "phase3.size": 96}).phases[2:4] == \
        (replace(recipe.phases[2], size=96), replace(recipe.phases[3], epochs=3))
    # the SWA round continues phase 4 at half its rates and size: it follows the trial's phase 4
    assert changed.phases[4] == swa_round(changed.phases[3], epochs=2)
    longer = apply(recipe, {"phase4.size": 192, "phase5.epochs": 3}).phases
    assert longer[4] == swa_round(longer[3], epochs=3) and longer[4].size == 192
    own = apply(recipe, {"phase4.lr": 2e-3, "phase5.lr": 1e-4}).phases[4]  # a round the trial set itself stays so
    assert own.lr == pytest.approx((1e-4 / 2.8 ** 2, 1e-4 / 2.8, 1e-4))
    assert apply(recipe, {"phase1.lr": 5e-3}).phases[4] == recipe.phases[4]
    with pytest.raises(PipelineError):
        from pipeline.search import check
        check({"phase4.size": object()}, recipe, "x")


@pytest.mark.quick
def rossmann_study(workdir, tmp_path, capsys, study: str, *flags: str):
    """`pipeline tune rossmann-store-sales` of two random trials on a few stores' weeks: the
    competition, its two completed trials, and what the command printed."""
    from table_data import rossmann
    data = rossmann(tmp_path / "rossmann")
    comp = load("rossmann-store-sales")
    assert main(["tune", comp.name, "--study", study, "--trials", "2", "--sampler", "random", *flags,
                 "--data", str(data)]) == 0
    out = capsys.readouterr().out
    trials = optuna.load_study(study_name=study, storage=storage_for(Workdir(workdir), comp, study, None)).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == 2
    return comp, done, out


def test_a_table_is_tuned_on_its_last_time_fold_with_its_own_search(workdir, tmp_path, capsys):
    """Rossmann's definition as it is (phase rates and epochs, weight decay; phases without a size)
    on a few stores' weeks: two trials, each a run of the trial's values on the competition's own
    fold (the last block), ranked lower RMSPE first."""
    from pipeline.core.files import read_json
    comp, done, out = rossmann_study(workdir, tmp_path, capsys, "t", "--pruner", "none")
    for t in done:
        run = workdir / "data" / "runs" / comp.name / f"t-{t.number}"
        [phase] = read_json(run / "settings.json")["recipe"]["phases"]
        assert phase["lr"] == t.params["phase1.lr"] and phase["epochs"] == t.params["phase1.epochs"]
        assert phase["size"] is None
        assert read_json(run / "settings.json")["recipe"]["weight_decay"] == t.params["weight_decay"]
        assert read_json(run / "scores.json")["trained_folds"] == [2] and t.value == read_json(run / "scores.json")["oof"]
    best = min(done, key=lambda t: t.value)
    rows = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s+\d\.\d{4}\s", line)]
    assert [float(r[1]) for r in rows] == pytest.approx(sorted(t.value for t in done), abs=1e-4)  # lower first
    assert f"best: trial {best.number}" in out
    assert apply(comp.recipes["cpu"], best.params) == eval(out.split("runs it again):\n")[1].split("\nplots:")[0],
                                                           {"Recipe": Recipe, "Phase": Phase})


@pytest.mark.quick
def test_a_table_phase_has_no_size_to_search():
    from pipeline.search import Int, check
    comp = load("rossmann-store-sales")
    with pytest.raises(PipelineError, match=r"phase 1 has no size to search \(a table's rows have none\)"):
        check({"phase1.size": Int(64, 128)}, comp.recipes["cpu"], "rossmann")


def test_trees_are_tuned_over_the_definitions_trees_names(workdir, tmp_path, capsys):
    """`--recipe trees`: the trials draw the search's trees.* names only (the network's are the
    other recipes'), each a run of trees with those settings."""
    from pipeline.core.files import read_json
    from pipeline.recipe import Trees
    comp, done, out = rossmann_study(workdir, tmp_path, capsys, "tt", "--recipe", "trees")
    for t in done:
        assert set(t.params) == {"trees.leaves", "trees.lr", "trees.l2", "trees.feature_fraction"}
        trees = read_json(workdir / "data" / "runs" / comp.name / f"tt-{t.number}" / "settings.json")["recipe"]["trees"]
        assert trees["leaves"] == t.params["trees.leaves"] and trees["lr"] == t.params["trees.lr"]
    best = min(done, key=lambda t: t.value)
    assert apply(comp.recipes["trees"], best.params) == eval(out.split("runs it again):\n")[1].split("\nplots:")[0],
                                                             {"Recipe": Recipe, "Phase": Phase, "Trees": Trees})
