"""The run registry and `pipeline report`: round trip, ranking, mean ± std, the paired comparison,
reference standings, leaderboard scores, the HTML page, an empty registry, a deleted run folder,
and failed or interrupted runs shown as such."""
import json
import re

import numpy as np
import pytest
from scipy import stats

from pipeline.cli import main
from pipeline.core.workdir import Workdir
from pipeline.metrics import micro_f1
from pipeline.tracking.registry import read_runs, read_submissions, record_run, record_submissions
from pipeline.tracking.report import paired, runs, write_html


def a_run(workdir, name, scores, status="finished", torch="2.14.1", fold_ids=None, **recipe):
    """A run of plant-seedlings with these fold scores (of folds 0, 1, ... or `fold_ids`),
    recorded as run_all records one."""
    run_dir = workdir / "data" / "runs" / "plant-seedlings" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {"competition": "plant-seedlings", "run": name, "recipe": {"folds": 5, "tta": 4, **recipe},
                "versions": {"torch": torch, "timm": "1.0.31"}}
    folds = ([{"fold": k, "micro_f1": s} for k, s in zip(fold_ids or range(len(scores)), scores)]
             if status == "finished" else None)
    record_run(Workdir(workdir), settings, run_dir=run_dir, metric=micro_f1,
               stage_seconds={"train": 100.0, "predict": 20.0}, status=status, folds=folds,
               oof=float(np.mean(scores)) if folds else None)
    return run_dir


@pytest.mark.quick
def test_registry_round_trip_and_a_rerun_replaces_its_rows(workdir):
    run_dir = a_run(workdir, "cpu", [0.90, 0.92])
    rows = read_runs(Workdir(workdir), "plant-seedlings")
    assert list(rows["fold"]) == [0, 1] and list(rows["score"]) == [0.90, 0.92]
    assert list(rows["oof"]) == pytest.approx([0.91, 0.91]) and set(rows["seconds"]) == {120.0}
    assert rows["run_dir"][0] == str(run_dir) and json.loads(rows["settings"][0])["recipe"]["tta"] == 4
    assert rows["git_commit"][0] and len(rows["settings_hash"][0]) == 8  # this checkout's commit
    a_run(workdir, "cpu", [0.95, 0.96, 0.97])
    assert list(read_runs(Workdir(workdir))["score"]) == [0.95, 0.96, 0.97]


@pytest.mark.quick
def test_ranking_mean_std_and_paired_comparison(workdir, capsys):
    a_run(workdir, "base", [0.90, 0.92, 0.94])
    a_run(workdir, "tta8", [0.91, 0.93, 0.96], tta=8)
    a_run(workdir, "newer-torch", [0.80, 0.80, 0.80], torch="2.15.0", tta=8)
    assert list(read_runs(Workdir(workdir), "plant-seedlings").drop_duplicates("run")["torch"]) == \
        ["2.14.1", "2.14.1", "2.15.0"]
    table = runs(Workdir(workdir), "plant-seedlings").query("run != 'newer-torch'").reset_index(drop=True)
    assert list(table["run"]) == ["tta8", "base"]
    assert table["mean"][1] == pytest.approx(0.92) and table["std"][1] == pytest.approx(np.std([0.90, 0.92, 0.94]))
    c = paired(table, "tta8", "base")
    assert c["diffs"] == pytest.approx([0.01, 0.01, 0.02]) and c["better"] == 3 and c["worse"] == 0
    assert c["p"] == pytest.approx(stats.ttest_rel([0.91, 0.93, 0.96], [0.90, 0.92, 0.94]).pvalue)
    assert main(["report", "plant-seedlings", "--compare", "base", "tta8"]) == 0
    out = capsys.readouterr().out
    assert "0.9333 ± 0.0205" in out and "0.9200 ± 0.0163" in out
    assert "recipe.tta: 8 -> 4" in out  # base against the best run
    assert "torch 2.14.1 -> 2.15.0; same settings" not in out
    newer = next(line for line in out.splitlines() if "  newer-torch  " in line)
    assert newer.endswith("torch 2.14.1 -> 2.15.0")  # the only difference from the best run, tta8
    assert "base - tta8 = -0.0100, -0.0100, -0.0200" in out and "base better on 0 of 3 folds" in out


@pytest.mark.quick
def test_runs_scored_on_more_folds_rank_first_and_say_which_folds(workdir, capsys):
    a_run(workdir, "lucky", [0.99])  # a one-fold trial's best fold
    a_run(workdir, "five", [0.90, 0.91, 0.92, 0.93, 0.94])
    a_run(workdir, "other-one", [0.95], fold_ids=[3])
    a_run(workdir, "unlucky", [0.80])
    a_run(workdir, "gappy", [0.97, 0.97, 0.97], fold_ids=[0, 2, 3])
    assert list(runs(Workdir(workdir), "plant-seedlings")["run"]) == ["five", "gappy", "lucky", "unlucky", "other-one"]
    assert main(["report", "plant-seedlings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cells = {n: re.split(r"\s{2,}", next(line for line in lines if f"  {n}  " in line))[1:4]
             for n in ("five", "gappy", "lucky", "other-one")}
    assert cells == {"five": ["five", "0-4 of 5", "0.9200 ± 0.0141"], "gappy": ["gappy", "0,2-3 of 5", "0.9700 ± 0.0000"],
                     "lucky": ["lucky", "0 of 5", "0.9900 ± 0.0000"], "other-one": ["other-one", "3 of 5", "0.9500 ± 0.0000"]}


@pytest.mark.quick
def test_changed_settings_show_rounded_numbers(workdir, capsys):
    a_run(workdir, "best", [0.95], lr=0.0853504070738907, weight_decay=0.01)
    a_run(workdir, "tuned", [0.90], lr=0.0417791684108358, weight_decay=0.0100000001)
    assert main(["report", "plant-seedlings"]) == 0
    out = capsys.readouterr().out
    assert "recipe.lr: 0.08535 -> 0.04178" in out and "0.0417791684108358" not in out
    assert "recipe.weight_decay: 0.01 -> 0.0100000001" in out  # rounded alike, they are shown whole


@pytest.mark.quick
def test_a_long_failure_has_a_column_of_its_own_cut_short(workdir, capsys):
    a_run(workdir, "good", [0.9, 0.9])
    why = "failed: RuntimeError: " + "the allocator said something long " * 8
    a_run(workdir, "oom", [], status=why)
    assert main(["report", "plant-seedlings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    assert header.index("OOF") - header.index("mean ± std") < 20  # the score column keeps its width
    assert header.split()[-4:] == ["status", "changed", "vs", "best"]
    oom = next(line for line in lines if "  oom  " in line)
    assert why[:59] + "…" in oom and why[:61] not in oom


@pytest.mark.quick
def test_a_difference_within_fold_noise_says_so(workdir):
    a_run(workdir, "a", [0.90, 0.95, 0.91])
    a_run(workdir, "b", [0.92, 0.93, 0.92])
    c = paired(runs(Workdir(workdir), "plant-seedlings"), "b", "a")
    assert not c["beyond_noise"] and c["better"] == 2 and c["worse"] == 1


@pytest.mark.quick
def test_standing_against_the_medal_thresholds_and_leaderboard_scores(workdir, capsys):
    a_run(workdir, "strong", [0.990, 0.991])
    a_run(workdir, "weak", [0.950, 0.951])
    record_submissions(Workdir(workdir), [{"competition": "plant-seedlings", "ref": 1, "run": "strong",
                                  "date": "2026-11-24 10:00:00", "public_score": "0.98800", "private_score": "0.98700"}])
    assert main(["report", "plant-seedlings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    strong, weak = (next(line for line in lines if f"  {n}  " in line) for n in ("strong", "weak"))
    assert ">= silver" in strong and "0.9880" in strong and "0.9870" in strong
    assert "< median" in weak
    assert "gold 0.99244" in lines[0]


@pytest.mark.quick
def test_failed_interrupted_and_deleted_runs(workdir, capsys):
    a_run(workdir, "good", [0.9, 0.9])
    a_run(workdir, "oom", [], status="failed: CUDA out of memory")
    a_run(workdir, "killed", [], status="interrupted")
    gone = a_run(workdir, "gone", [0.8, 0.8])
    gone.rmdir()
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "gone (folder deleted)" in out
    for name, status in (("oom", "failed: CUDA out of memory"), ("killed", "interrupted")):
        line = next(line for line in out.splitlines() if f"  {name}  " in line)
        assert status in line and "0." not in line  # no score of any kind
    assert read_runs(Workdir(workdir)).query("run == 'oom'")["score"].isna().all()


def broken(table, how):
    """`table` unreadable: garbage, or a valid table cut off (a copy, a full disk)."""
    if how == "garbage":
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_bytes(b"not a parquet table\n" * 10)
    else:
        whole = table.read_bytes()
        table.write_bytes(whole[:len(whole) // 2])
    return table.read_bytes()


def set_aside(table, bytes_, err):
    """The broken table was kept aside with its bytes, said in one line naming it."""
    [aside] = table.parent.glob(f"{table.name}.broken-*")
    assert aside.read_bytes() == bytes_
    [line] = err.strip().splitlines()
    assert line.startswith(f"{table}: unreadable (ArrowInvalid: ") and f"set aside as {aside.name}" in line


@pytest.mark.quick
@pytest.mark.parametrize("how", ["garbage", "cut off"])
def test_a_broken_registry_is_set_aside_and_the_run_recorded(workdir, capsys, how):
    a_run(workdir, "old", [0.8])
    table = Workdir(workdir).runs_table
    bytes_ = broken(table, how)
    a_run(workdir, "new", [0.90, 0.92])  # what every run does first: no traceback, the run goes on
    set_aside(table, bytes_, capsys.readouterr().err)
    assert list(read_runs(Workdir(workdir))["run"]) == ["new", "new"]


@pytest.mark.quick
def test_report_sets_a_broken_registry_aside_and_goes_on(workdir, capsys):
    a_run(workdir, "cpu", [0.90, 0.92])
    record_submissions(Workdir(workdir), [{"competition": "plant-seedlings", "ref": 1, "run": "cpu",
                                           "date": "2026-11-24 10:00:00", "public_score": "0.9"}])
    subs = Workdir(workdir).submissions_table
    bytes_ = broken(subs, "cut off")
    assert main(["report"]) == 0
    out, err = capsys.readouterr()
    set_aside(subs, bytes_, err)
    assert "  cpu  " in out  # the runs still show, without leaderboard scores
    runs_table = Workdir(workdir).runs_table
    bytes_ = broken(runs_table, "garbage")
    assert main(["report"]) == 0
    out, err = capsys.readouterr()
    set_aside(runs_table, bytes_, err)
    assert "no runs recorded yet" in out


@pytest.mark.quick
def test_a_broken_submissions_table_is_set_aside_when_one_is_recorded(workdir, capsys):
    subs = Workdir(workdir).submissions_table
    bytes_ = broken(subs, "garbage")
    record_submissions(Workdir(workdir), [{"competition": "plant-seedlings", "ref": 2, "run": "cpu"}])
    set_aside(subs, bytes_, capsys.readouterr().err)
    assert list(read_submissions(Workdir(workdir))["ref"]) == [2]


@pytest.mark.quick
def test_empty_registry_says_so(workdir, capsys):
    assert main(["report"]) == 0
    assert "no runs recorded yet" in capsys.readouterr().out


@pytest.mark.quick
def test_html_is_self_contained_and_shows_every_run(workdir):
    a_run(workdir, "base", [0.90, 0.92])
    a_run(workdir, "tta8", [0.91, 0.93], tta=8)
    a_run(workdir, "oom", [], status="failed: CUDA out of memory")
    record_submissions(Workdir(workdir), [{"competition": "plant-seedlings", "ref": 1, "run": "base",
                                  "date": "2026-11-24 10:00:00", "public_score": "0.9"}])
    page = write_html(workdir / "report.html", Workdir(workdir)).read_text()
    assert all(f"<td>{n}</td>" in page for n in ("base", "tta8", "oom"))
    assert page.count("data:image/png;base64,") == 2  # fold scores, and CV against the leaderboard
    assert "http" not in page and "<script" not in page and "<link" not in page
    assert "href='data/runs/plant-seedlings/base/diagnostics/'" in page


@pytest.mark.quick
def test_a_lower_is_better_metric_ranks_the_lowest_first(workdir, capsys):
    from pipeline.metrics import log_loss
    for name, scores in (("high", [0.60, 0.62]), ("low", [0.40, 0.45])):
        run_dir = workdir / "data" / "runs" / "dog-breed-identification" / name
        run_dir.mkdir(parents=True)
        record_run(Workdir(workdir), {"competition": "dog-breed-identification", "run": name, "recipe": {"folds": 5}},
                   run_dir=run_dir, metric=log_loss, stage_seconds={"train": 1.0},
                   folds=[{"fold": k, "log_loss": s} for k, s in enumerate(scores)], oof=float(np.mean(scores)))
    table = runs(Workdir(workdir), "dog-breed-identification")
    assert list(table["run"]) == ["low", "high"]
    c = paired(table, "low", "high")
    assert c["better"] == 2 and c["worse"] == 0  # lower log loss on both folds is better
    assert main(["report", "dog-breed-identification"]) == 0
    assert "lower" in capsys.readouterr().out


@pytest.mark.quick
def test_a_tables_runs_rank_the_lowest_rmspe_first(workdir, tmp_path, capsys):
    """Two runs of Rossmann on a few stores' weeks, recorded by run_all as any run is: RMSPE is
    lower-is-better from the metric through the registry to the report's order and standings."""
    from table_data import rossmann, tiny_recipe
    from pipeline.recipe import Phase
    from pipeline.stages.context import start
    from pipeline.stages.run import run_all
    data = rossmann(tmp_path / "rossmann")
    means = {}
    for name, lr in (("fast", 3e-2), ("slow", 1e-4)):
        r = start("rossmann-store-sales", data=str(data), run=name, log=lambda *a: None,
                  recipe=tiny_recipe(phases=(Phase(epochs=2, lr=lr),)))
        means[name] = run_all(r)["mean"]
    assert means["fast"] != means["slow"]
    low, high = sorted(means, key=means.get)
    table = runs(Workdir(workdir), "rossmann-store-sales")
    assert list(table["run"]) == [low, high] and not table["higher_is_better"].any()
    assert paired(table, low, high)["better"] == 1  # on the one fold both trained (the last)
    assert main(["report", "rossmann-store-sales"]) == 0
    out = capsys.readouterr().out
    assert "rmspe (lower is better)" in out and out.index(f"  {low}  ") < out.index(f"  {high}  ")
    assert "< 10th" in out  # a few epochs on a few stores: short of every reference score
