"""Nothing lost, nothing clobbered: a run holds its folder, the registry takes many writers, a kill
of any kind is recorded, a failed re-run keeps the finished result, and a stale submission is
never sent. Real processes where the point is concurrency or a kill; digits on timm's test model."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.core.files import is_held, locked
from pipeline.core.workdir import RUN_LOCK, Workdir
from pipeline.metrics import accuracy
from pipeline.tracking.registry import read_runs, record_run

RUN = ["run", "digits", "--arch", "test_efficientnet", "--weights", "none", "--batch-size", "32", "--train-folds", "0"]
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}


def launch(workdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=workdir, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def until(condition, *processes: subprocess.Popen) -> None:
    """Wait for `condition` (a file that says what happened) while the processes it waits on live."""
    while not condition():
        for process in processes:
            assert process.poll() is None, process.communicate()
        time.sleep(0.05)


def training(run_dir: Path):
    """True once the run holds its folder and has trained an epoch (it is well inside the run)."""
    return lambda: is_held(run_dir / RUN_LOCK) and any(run_dir.glob("fold*/state.pt"))


def test_a_second_run_of_the_same_name_refuses_and_a_kill_9_leaves_no_lock(workdir, capsys):
    run_dir = workdir / "data" / "runs" / "digits" / "cpu"
    first = launch(workdir, *RUN, "--seed", "1")
    until(training(run_dir), first)
    assert main([*RUN, "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert f"run 'cpu' ({run_dir}) is in use by pid {first.pid} on " in err and "another --run NAME" in err
    assert json.loads((run_dir / "settings.json").read_text())["recipe"]["seed"] == 1  # not clobbered
    assert main(["report", "digits"]) == 0
    assert re.search(r"^- +cpu .* running\b", capsys.readouterr().out, re.M)  # (its status column)

    first.send_signal(signal.SIGKILL)
    first.wait()
    assert main(["report", "digits"]) == 0
    assert "killed (recorded running, no process holds it)" in capsys.readouterr().out
    assert main([*RUN, "--seed", "2"]) == 0  # the OS dropped the dead holder's lock: nothing blocks
    [status] = set(read_runs(Workdir(workdir), "digits")["status"])
    assert status == "finished" and json.loads((run_dir / "settings.json").read_text())["recipe"]["seed"] == 2


def test_sigterm_is_recorded_as_interrupted_and_said_in_one_line(workdir):
    run_dir = workdir / "data" / "runs" / "digits" / "cpu"
    process = launch(workdir, *RUN)
    until(training(run_dir), process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "pipeline: stopped by SIGTERM; run the same command again to resume"
    assert list(read_runs(Workdir(workdir), "digits")["status"]) == ["interrupted (SIGTERM)"]
    assert not is_held(run_dir / RUN_LOCK)



@pytest.mark.quick
def test_a_sigterm_while_a_run_is_ending_is_ignored_not_a_traceback(monkeypatch, capsys, workdir):
    # torchrun sends every rank SIGTERM once one fails, often while a rank is already saying why
    # it stopped: that line must stay the last word, not a KeyboardInterrupt's traceback
    import pipeline.core.distributed  # (imports torch.distributed: main's cleanup then calls finish)
    monkeypatch.setattr(pipeline.core.distributed, "finish", lambda: os.kill(os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    assert main(["list"]) == 0
    assert main(["run", "no-such-competition"]) == 2
    assert "pipeline: error:" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # and the caller's handler back afterwards

WRITER = """
import sys, time
from pathlib import Path
from pipeline.core.workdir import Workdir
from pipeline.metrics import accuracy
from pipeline.tracking.registry import record_run
name = sys.argv[1]
Path(f"ready-{name}").touch()  # imported: the test starts every writer at once
while not Path("go").exists():
    time.sleep(0.01)
record_run(Workdir(Path.cwd()), {"competition": "digits", "run": name, "recipe": {}}, run_dir=Path(name),
           metric=accuracy, stage_seconds={"train": 1.0}, folds=[{"fold": 0, "accuracy": 0.5}], oof=0.5)
"""

READER = """
import time
from pathlib import Path
from pipeline.core.workdir import Workdir
from pipeline.tracking.registry import read_runs
reads = 0
while not Path("stop").exists():
    read_runs(Workdir(Path.cwd()))  # never a torn file
    reads += 1
print(reads)
"""


def test_the_registry_keeps_every_row_of_eight_writers_at_once_and_a_killed_writer_blocks_nothing(workdir):
    record_run(Workdir(workdir), {"competition": "digits", "run": "first", "recipe": {}}, run_dir=workdir,
               metric=accuracy, stage_seconds={}, folds=[{"fold": 0, "accuracy": 0.4}], oof=0.4)
    reader = subprocess.Popen([sys.executable, "-c", READER], cwd=workdir, env=ENV, stdout=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{i}"], cwd=workdir, env=ENV) for i in range(8)]
    until(lambda: all((workdir / f"ready-w{i}").exists() for i in range(8)), *writers)  # all waiting at the line
    (workdir / "go").touch()
    assert [w.wait(timeout=120) for w in writers] == [0] * 8
    (workdir / "stop").touch()
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) > 0
    table = read_runs(Workdir(workdir), "digits")
    assert sorted(table["run"]) == ["first"] + [f"w{i}" for i in range(8)]

    lock = workdir / "data" / "registry" / "runs.lock"  # a writer killed while holding the lock...
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pipeline.core.files import locked\n"
                               f"with locked({str(lock)!r}):\n    print('held', flush=True); time.sleep(600)"],
                              cwd=workdir, env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert is_held(lock)
    holder.kill()
    holder.wait()
    assert not is_held(lock)  # ...left nothing behind that blocks the next one (asked without waiting)
    with locked(lock):
        pass


def test_a_failed_rerun_keeps_the_finished_result_beside_it(workdir, capsys):
    assert main(RUN) == 0
    capsys.readouterr()
    before = read_runs(Workdir(workdir), "digits")

    def broken_pipe(*parts):  # `pipeline run ... | head`, the reader gone
        if str(parts[0]).startswith("["):  # (the first stage line)
            raise BrokenPipeError(32, "Broken pipe")
    from pipeline.stages.context import start
    from pipeline.stages.run import run_all
    with pytest.raises(BrokenPipeError):
        run_all(start("digits", arch="test_efficientnet", weights="none", batch_size=32, train_folds=(0,), log=broken_pipe))
    after = read_runs(Workdir(workdir), "digits")
    assert list(after["status"]) == ["finished"] * len(before)
    assert after["score"].tolist() == before["score"].tolist() and after["oof"].tolist() == before["oof"].tolist()
    assert after["latest"].str.startswith("failed: [Errno 32] Broken pipe (").all()
    assert main(["report", "digits"]) == 0
    row = next(l for l in capsys.readouterr().out.splitlines() if " cpu " in l)
    assert "then failed: [Errno 32] Broken pipe" in row and f"{before['oof'][0]:.4f}" in row

    assert main(RUN) == 0  # finished again: the note goes
    assert read_runs(Workdir(workdir), "digits")["latest"].isna().all()


def test_a_rerun_stopped_before_its_submission_leaves_nothing_that_can_be_sent(workdir, capsys):
    assert main(RUN) == 0
    from pipeline.stages.context import start
    from pipeline.stages.run import run_all

    def stop_in_predict(*parts):
        if "[predict]" in " ".join(map(str, parts)):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):  # other settings: predict with the best checkpoint
        run_all(start("digits", arch="test_efficientnet", weights="none", batch_size=32, train_folds=(0,), checkpoint="best",
                      log=stop_in_predict))
    assert (workdir / "submissions" / "digits" / "cpu.csv").exists()  # the earlier run's file...
    capsys.readouterr()
    assert main(["submit", "digits", "-m", "best checkpoint"]) == 2  # ...is not this run's to send
    err = capsys.readouterr().err
    assert "cpu.csv: not sent: the run's latest attempt" in err and "did not finish" in err


@pytest.mark.quick
@pytest.mark.parametrize("name", ["../../../../escaped", "a/b", ".hidden", "", "x" * 101])
def test_a_run_name_with_path_parts_is_refused_and_nothing_written(workdir, capsys, name):
    assert main([*RUN, "--run", name]) == 2
    assert "use letters, digits and - _ ." in capsys.readouterr().err
    assert not any(workdir.parent.glob("escaped*")) and not (workdir / "data" / "runs").exists()


@pytest.fixture
def digits_outside(tmp_path, monkeypatch) -> Path:
    """digits' definition outside the work folder, which the loader would find under a name with
    path parts: ../../outside/digits from the competitions folder $PIPELINE_COMPETITIONS names."""
    from pipeline.competition import load
    folder = tmp_path / "outside" / "digits"
    folder.mkdir(parents=True)
    shutil.copy(load("digits").folder / "competition.py", folder)
    (tmp_path / "competitions" / "here").mkdir(parents=True)
    monkeypatch.setenv("PIPELINE_COMPETITIONS", str(tmp_path / "competitions" / "here"))
    return folder


def everything_outside(workdir: Path) -> set[Path]:
    return {p for p in workdir.parent.rglob("*") if workdir not in (p, *p.parents)}


@pytest.mark.quick
@pytest.mark.parametrize("name", ["../../outside/digits", "OUTSIDE", "a/b", ".hidden", "", "x" * 101])
def test_a_competition_name_with_path_parts_is_refused_and_nothing_written(workdir, digits_outside, capsys, name):
    name = str(digits_outside) if name == "OUTSIDE" else name  # an absolute path
    before = everything_outside(workdir)
    for command in (["run", name, *RUN[2:], "--run", "a"], ["download", name], ["tune", name],
                    ["snapshots", name], ["submit", name, "-m", "x"], ["kernel", name]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith(f"pipeline: error: competition name {name!r}: use letters, digits and - _ .")
        assert err.count("\n") == 1, command
    assert everything_outside(workdir) == before and not any(workdir.iterdir())


def refused_rows(workdir: Path, competition: str = "plant-seedlings"):
    return read_runs(Workdir(workdir), competition).to_dict("records")


@pytest.mark.quick
def test_a_run_whose_settings_are_refused_leaves_a_failed_row_the_report_shows(workdir, plant_data, capsys):
    assert main(["run", "plant-seedlings", "--data", str(plant_data), "--set", "phase9.lr=1", "--seed", "3"]) == 2
    said = capsys.readouterr().err.removeprefix("pipeline: error: ").splitlines()[0]
    [row] = refused_rows(workdir)
    assert row["status"] == f"failed: {said}" and "phase9" in said
    assert (row["competition"], row["run"]) == ("plant-seedlings", "cpu") and pd.isna(row["fold"])
    settings = json.loads(row["settings"])
    assert settings["recipe_name"] == "cpu" and settings["given"] == {"seed": 3, "set": ["phase9.lr=1"]}
    assert main(["report", "plant-seedlings"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if " cpu " in l)
    assert "failed: " in line and "(folder deleted)" not in line
    assert main(["report", "plant-seedlings", "--html", str(workdir / "report.html")]) == 0


@pytest.mark.quick
@pytest.mark.parametrize("problem", ["no data folder", "sample disagrees", "unreadable image"])
def test_a_run_whose_data_is_refused_leaves_a_failed_row_with_its_settings(workdir, plant_data, capsys, problem):
    data = plant_data
    if problem == "no data folder":
        data = plant_data.parent / "nowhere"
    elif problem == "sample disagrees":
        (plant_data / "test" / "t0001.png").unlink()
    else:
        (plant_data / "train" / "Maize" / "broken.png").write_bytes(b"not an image")
    assert main(["run", "plant-seedlings", "--data", str(data), "--run", "tiny", "--arch", "test_efficientnet",
                 "--weights", "none", "--set", "phase1.epochs=1"]) == 2
    said = capsys.readouterr().err.removeprefix("pipeline: error: ").splitlines()[0]
    [row] = refused_rows(workdir)
    assert row["run"] == "tiny" and row["status"] == f"failed: {said}"
    recipe = json.loads(row["settings"])["recipe"]  # the settings were fine: recorded resolved
    assert recipe["arch"] == "test_efficientnet" and recipe["phases"][0]["epochs"] == 1
    assert main(["report", "plant-seedlings"]) == 0 and "failed: " in capsys.readouterr().out


@pytest.mark.quick
def test_no_row_for_a_usage_error_nor_from_a_rank_other_than_0(workdir, plant_data, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["run", "plant-seedlings", "--data", str(plant_data), "--epochs", "3"])  # never became a run
    monkeypatch.setenv("RANK", "1")
    from pipeline.stages.run import start_run
    with pytest.raises(Exception, match="phase9"):
        start_run("plant-seedlings", data=str(plant_data), assignments=["phase9.lr=1"])
    assert not refused_rows(workdir)
