"""Progress written to a file or a Kaggle kernel's log: whole plain lines, at most one every
PIPELINE_PROGRESS_SECONDS, never a `\\r`; tqdm's bars in a terminal; TQDM_DISABLE silences both."""
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tqdm import tqdm

from conftest import tiny_data
from pipeline import PipelineError
from pipeline.core import progress
from pipeline.core.device import Device
from pipeline.core.progress import bar
from pipeline.metrics import accuracy
from pipeline.recipe import Phase, Recipe
from pipeline.training.models import create_model
from pipeline.training.trainer import fit

LINE = re.compile(r"  [^\r\n]+: \d+(/\d+)? \w+, \d+s(, [^\r\n]*)?")  # "  predict: 40/120 batches, 31s"


@pytest.fixture
def logged(monkeypatch):
    """stderr is not a terminal (pytest captures it) and no bar is silenced."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("PIPELINE_PROGRESS_SECONDS", raising=False)


@pytest.mark.quick
def test_a_long_loop_prints_a_plain_line_every_30_seconds(logged, monkeypatch, capsys):
    clock = iter(range(0, 10_000, 10))  # every reading of the clock 10 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    b = bar(range(12), "train 96px", unit="batches")
    for _ in b:
        b.set_postfix(loss="0.123")
    err = capsys.readouterr().err
    assert "\r" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert len(lines) == 12 * 10 // 30  # 120 s of loop: one line each 30 s
    assert all(LINE.fullmatch(line) for line in lines)
    assert lines[0] == "  train 96px: 3/12 batches, 30s, loss 0.123"


@pytest.mark.quick
def test_a_short_loop_prints_nothing(logged, capsys):
    for _ in bar(range(50), "predict"):
        pass
    assert capsys.readouterr().err == ""


@pytest.mark.quick
def test_interval_zero_prints_every_update(logged, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_PROGRESS_SECONDS", "0")
    b = bar(total=10, initial=4, desc="decode train [24]px", unit="images")
    b.update(3)
    b.update(3)
    b.close()
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r", \d+s$", "", line) for line in lines] == ["  decode train [24]px: 7/10 images",
                                                              "  decode train [24]px: 10/10 images"]


@pytest.mark.quick
def test_tqdm_disable_silences_the_lines_and_the_bars(logged, monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_PROGRESS_SECONDS", "0")
    monkeypatch.setenv("TQDM_DISABLE", "1")  # as distributed.launch sets it on ranks but 0, after tqdm's import
    for _ in bar(range(3), "train"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys, "stderr", Terminal())
    terminal_bar = bar(range(3), "train")
    assert isinstance(terminal_bar, tqdm) and terminal_bar.disable


@pytest.mark.quick
def test_a_terminal_keeps_the_tqdm_bar(logged, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    b = bar(range(3), "train", dynamic_ncols=True)
    assert isinstance(b, tqdm) and not b.disable and not b.leave
    assert list(b) == [0, 1, 2]


@pytest.mark.quick
def test_a_bad_interval_is_one_clear_error(logged, monkeypatch):
    monkeypatch.setenv("PIPELINE_PROGRESS_SECONDS", "soon")
    with pytest.raises(PipelineError, match="PIPELINE_PROGRESS_SECONDS='soon'"):
        bar(range(3), "train")


@pytest.mark.quick
def test_precompute_says_how_long_it_took(tmp_path):
    said, data = [], tiny_data(tmp_path)
    recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=8, batchnorm="batch", phases=(
        Phase(size=24, epochs=1, lr=1e-2, frozen=("early", "late"), precompute=True),))
    fit(create_model("test_efficientnet", 3, "none"), recipe, data, accuracy, tmp_path / "fold", key="k",
        dev=Device.pick("cpu"), log=said.append)
    assert sum(bool(re.fullmatch(r"  precomputed activations for 24 images at 24px in \d+s", s)) for s in said) == 1


def test_training_logged_to_one_file_keeps_every_line_whole(tmp_path):
    # a fold trained as `pipeline run > log 2>&1` or in a Kaggle kernel: stdout and stderr in one file
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        import torch
        from conftest import tiny_data
        from pipeline.core.device import Device
        from pipeline.metrics import accuracy
        from pipeline.training.models import create_model
        from pipeline.recipe import Phase, Recipe
        from pipeline.training.trainer import fit

        tmp = Path(sys.argv[1])
        recipe = Recipe(arch="test_efficientnet", weights="none", batch_size=6,
                        phases=(Phase(size=24, epochs=1, lr=1e-2, frozen=("early", "late"), precompute=True),
                                Phase(size=24, epochs=1, lr=1e-3)))
        data = tiny_data(tmp)
        print(" fold 0 of 1")
        torch.manual_seed(0)
        fit(create_model(recipe.arch, 3, recipe.weights), recipe, data, accuracy, tmp / "fold0", key="k",
            dev=Device.pick("cpu"))
    """)
    tests, root = Path(__file__).parent, Path(__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env.update(PIPELINE_PROGRESS_SECONDS="0", NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tests), str(root)]))
    with open(tmp_path / "log", "w") as log:
        subprocess.run([sys.executable, "-c", script, str(tmp_path)], stdout=log, stderr=subprocess.STDOUT,
                       env=env, check=True, timeout=300)
    text = (tmp_path / "log").read_text()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines.count(" fold 0 of 1") == 1
    shown = [i for i, line in enumerate(lines) if LINE.fullmatch(line)]
    assert shown and lines.index(" fold 0 of 1") < shown[0]  # printed first, written first
    assert "  precompute activations: 2/2 batches" in [re.sub(r", \d+s$", "", lines[i]) for i in shown]
    assert any(re.fullmatch(r"  precomputed activations for 24 images at 24px in \d+s", line) for line in lines)
    assert any(re.fullmatch(r"  phase 2/2 epoch 1/1 24px: 3/3 batches, \d+s, loss \d\.\d{3}", line) for line in lines)
    epochs = [line for line in lines if "train_loss" in line]
    assert len(epochs) == 2 and all(line.startswith("  phase ") for line in epochs)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
