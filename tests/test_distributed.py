"""Several processes under torchrun, on this CPU: two gloo ranks, one thread each (torchrun sets
OMP_NUM_THREADS=1). Digits with timm's test model: seconds a run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.core.distributed import Group
from pipeline.core.files import read_json

RUN = ["run", "digits", "--arch", "test_efficientnet", "--weights", "none", "--batch-size", "32"]


def launch(workdir: Path, *args: str, ranks: int = 2, **popen) -> subprocess.Popen:
    # `--`: torchrun's own parser would take pipeline's --run for its --run-path
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               "-m", "pipeline", "--", *args] if ranks > 1 else [sys.executable, "-m", "pipeline", *args]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TQDM_DISABLE": "1", "PIPELINE_DIST_TIMEOUT": "300",
           "OMP_NUM_THREADS": "1"}  # (one thread a rank; the one-process runs alike, to compare exactly)
    return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def finished(process: subprocess.Popen, timeout: float = 300) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-3000:] + err[-3000:]
    return out


def files_of(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*")}


def test_fold_parallel_trains_each_fold_exactly_as_one_process_does(workdir):
    one, two = workdir / "one", workdir / "two"
    for folder in (one, two):
        folder.mkdir()
    finished(launch(one, *RUN, ranks=1))
    out = finished(launch(two, *RUN, "--parallel", "folds"))
    assert "[rank 0]  fold 0 of 3" in out and "[rank 1]  fold 1 of 3" in out  # one fold each, side by side
    runs = [f / "data" / "runs" / "digits" / "cpu" for f in (one, two)]
    scores = [read_json(r / "scores.json") for r in runs]
    assert scores[0]["folds"] == scores[1]["folds"] and scores[0]["oof"] == scores[1]["oof"]
    for k in (0, 1):
        a, b = (torch.load(r / f"fold{k}" / "last.pt", weights_only=False)["model"] for r in runs)
        assert all(torch.equal(a[name], b[name]) for name in a)
    assert files_of(runs[0]) == files_of(runs[1])
    subs = [pd.read_csv(f / "submissions" / "digits" / "cpu.csv") for f in (one, two)]
    assert subs[0].equals(subs[1])


def test_data_parallel_scores_every_image_once_and_only_rank_0_writes(workdir):
    one, two = workdir / "one", workdir / "two"
    for folder in (one, two):
        folder.mkdir()
    finished(launch(one, *RUN, ranks=1))
    finished(launch(two, *RUN))  # data-parallel: torchrun's default
    runs = [f / "data" / "runs" / "digits" / "cpu" for f in (one, two)]
    oof = pd.read_parquet(runs[1] / "oof_predictions.parquet")
    folds = pd.read_csv(runs[1] / "folds.csv", dtype={"id": str})
    assert oof["id"].is_unique and set(oof["id"]) == set(folds.loc[folds["fold"].isin([0, 1]), "id"])
    # the same global batch of 32 (16 a rank), so close, not equal: each rank's BatchNorm sees its
    # 16 images, and each rank augments with its own random stream
    one_scores, two_scores = (read_json(r / "scores.json") for r in runs)
    assert abs(one_scores["oof"] - two_scores["oof"]) < 0.03 and two_scores["oof"] > 0.85
    assert files_of(runs[0]) == files_of(runs[1])  # no file of rank 1's, no temporary left behind
    table = pd.read_parquet(two / "data" / "registry" / "runs.parquet")
    assert sorted(table["fold"]) == [0, 1] and (table["status"] == "finished").all()  # a row a fold, not a rank
    assert read_json(runs[1] / "settings.json")["ranks"] == 2
    again = finished(launch(two, *RUN))  # every rank takes rank 0's word on what is up to date
    assert "[train] up to date, skipped" in again and "[predict] up to date, skipped" in again


def rank_process(torchrun: int, rank: int) -> int:
    """The pid of torchrun's worker of rank `rank`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == torchrun and f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no rank {rank} under {torchrun}")


def test_a_rank_killed_mid_epoch_stops_the_others_in_one_line_and_a_rerun_resumes(workdir):
    # batches of 8: an epoch long enough to be killed inside
    run = [*RUN[:-1], "8", "--train-folds", "0"]
    process = launch(workdir, *run)
    state = workdir / "data" / "runs" / "digits" / "cpu" / "fold0" / "state.pt"
    while not state.exists():  # the first epoch is done: the second has begun
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    os.kill(rank_process(process.pid, 1), signal.SIGKILL)
    out, err = process.communicate(timeout=300)  # (a guard against a hang, not a speed test)
    assert process.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("pipeline:")]
    assert len(ours) == 1 and "run the same command again to resume" in ours[0], err[-3000:]
    assert "[rank0]: Traceback" not in err

    expected = resume_point(state)
    out = finished(launch(workdir, *run))
    assert expected in out
    assert read_json(workdir / "data" / "runs" / "digits" / "cpu" / "scores.json")["oof_images"] == 499


def resume_point(state: Path) -> str:
    """What a rerun says when it resumes from `state` (the epoch the kill landed in, wherever
    that was on a loaded machine)."""
    progress = torch.load(state, map_location="cpu", weights_only=False)
    return f"resuming at phase {progress['phase'] + 1}, epoch {progress['epoch'] + 1}"


def agree_on(rank: int, values: list, failures, store: str) -> None:
    # a file store: no port to pick and release (another process could take it in between)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        Group(rank, 2).agree("the settings and the data", values[rank])
    except PipelineError as e:
        failures.put((rank, str(e)))
    finally:
        torch.distributed.destroy_process_group()


def test_ranks_that_disagree_stop_in_one_line(tmp_path):
    context = torch.multiprocessing.get_context("spawn")
    failures = context.Queue()
    torch.multiprocessing.start_processes(agree_on, args=(["a1b2", "a1b2"], failures, str(tmp_path / "agree")),
                                          nprocs=2, start_method="spawn")
    assert failures.empty()
    torch.multiprocessing.start_processes(agree_on, args=(["a1b2", "ffff"], failures, str(tmp_path / "differ")),
                                          nprocs=2, start_method="spawn")
    said = sorted(failures.get(timeout=10) for _ in range(2))
    assert said[0][1] == said[1][1] == ("ranks disagree on the settings and the data: rank 1 has 'ffff', rank 0 "
                                        "'a1b2'; start every rank with the same command and the same data")


@pytest.mark.quick
def test_a_rank_shares_split_every_image_once_in_order():
    for n in (0, 1, 5, 806):
        for world in (1, 2, 3):
            shares = [Group(r, world).share(n) for r in range(world)]
            assert np.array_equal(np.concatenate(shares), np.arange(n))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


@pytest.mark.quick
def test_options_for_several_processes_need_them(workdir, capsys):
    assert main(["run", "digits", "--parallel", "folds"]) == 2
    assert "--parallel folds needs several processes: torchrun --nproc_per_node N -m pipeline -- run" in \
        capsys.readouterr().err
    assert main(["run", "digits", "--sync-bn"]) == 2
    assert "--sync-bn needs --parallel data on GPUs" in capsys.readouterr().err
    assert main(["--", "list"]) == 0  # the separator torchrun's launch form passes on


@pytest.mark.quick
def test_a_backend_this_torch_lacks_is_one_line(monkeypatch):
    from pipeline.core.distributed import launch as start_ranks
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(torch.distributed, "is_gloo_available", lambda: False)
    try:
        start_ranks("data", "cpu")
    except PipelineError as e:
        assert str(e).startswith("torch.distributed's gloo backend is not in this torch build")
    else:
        raise AssertionError("no error")


TINY = '''
from pipeline.competition import Submission
from pipeline.layouts import ClassFolders
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe, differential, mining_round, swa_round

slug = "tiny"
layout = ClassFolders(train_dir="train", test_dir="test", test_id="name")
classes = None
metric = accuracy
submission = Submission(id_column="file", label_column="species")
symmetry = "dihedral"
last = Phase(size=32, epochs=2, lr=differential(1e-3))
recipes = {"cpu": Recipe(arch="test_efficientnet", weights="none", batch_size=8, folds=2, phases=(
    Phase(size=32, epochs=1, lr=1e-2, frozen=("early", "late"), precompute=True),
    Phase(size=24, epochs=1, lr="find", frozen=("early",)),
    last, mining_round(last, fraction=0.25), swa_round(last, epochs=2)))}
'''


def test_every_stage_of_a_staged_recipe_runs_data_parallel(workdir, plant_data):
    """Precomputed activations, an lr range test, mining, SWA with BatchNorm recomputed: each has
    collectives of its own, and a rank that skipped one would hang the others."""
    (workdir / "competitions" / "tiny").mkdir(parents=True)
    (workdir / "competitions" / "tiny" / "competition.py").write_text(TINY)
    out = finished(launch(workdir, "run", "tiny", "--data", str(plant_data), "--train-folds", "all"))
    assert "the lr range test suggests" in out and "SWA: averaged weights" in out and "mined" in out
    run = workdir / "data" / "runs" / "tiny" / "cpu"
    assert {"swa.pt", "hard_negatives.csv", "last.pt"} <= {p.name for p in (run / "fold1").iterdir()}
    assert read_json(run / "scores.json")["oof_images"] == 60


def test_a_table_trains_fold_parallel_exactly_as_one_process_does(workdir, tmp_path, monkeypatch):
    """A table's folds on two ranks: each rank reads the table, fits its folds' encodings and
    trains them; the weights and the submission are one process's, bit for bit."""
    from rossmann_data import definition, made_up
    data = made_up(tmp_path / "rossmann")
    comps = definition(tmp_path / "competitions")
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(comps))  # (launch passes the environment on)
    args = ["run", "rossmann-store-sales", "--data", str(data), "--train-folds", "all"]
    one, two = workdir / "one", workdir / "two"
    for folder in (one, two):
        folder.mkdir()
    finished(launch(one, *args, ranks=1))
    finished(launch(two, *args, "--parallel", "folds"))
    runs = [f / "data" / "runs" / "rossmann-store-sales" / "cpu" for f in (one, two)]
    for k in (0, 1):
        a, b = (torch.load(r / f"fold{k}" / "last.pt", weights_only=False)["model"] for r in runs)
        assert all(torch.equal(a[name], b[name]) for name in a)
    subs = [pd.read_csv(f / "submissions" / "rossmann-store-sales" / "cpu.csv") for f in (one, two)]
    assert subs[0].equals(subs[1]) and (subs[0]["Sales"] > 0).any()
